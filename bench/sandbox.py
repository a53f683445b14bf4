#!/usr/bin/env python3
"""Sandbox benchmark: how long ``soong sandbox up``/``down`` and an instance's start take, and what it weighs.

* ``soong sandbox up`` (emulator + host + profile) against starting the emulator
  alone (``soong-lambda-emulator`` until it answers), both measured in this run;
* an instance from launch to "daemon and stand-in answer" (with a 0 s boot delay)
  against starting one bare ``soong-daemon`` from the same kind of config;
* ``soong sandbox down`` with one instance;
* the resident memory of one instance's processes (daemon master, 2 workers,
  enforcer; stand-in master and worker).

Run with the venv's python (a temporary HOME: nothing touches your profiles)::

    .venv/bin/python bench/sandbox.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "XDG_STATE_HOME": str(home / "state"),
            "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache"),
            "PYTHON_KEYRING_BACKEND": "soong.testing.keyring_backend.FileKeyring",
            "SOONG_TEST_KEYRING_FILE": str(home / "keyring.json")}


def _soong(env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([str(BIN / "soong"), *args], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def emulator_alone(env: dict[str, str]) -> float:
    """Seconds from spawning ``soong-lambda-emulator`` to its first answer."""
    from soong.sandbox.ports import free_port, http_ok, wait_until

    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "soong-lambda-emulator"), "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**env, "SOONG_EMULATOR_API_KEY": "bench-key"})
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/_emulator/health", 0.5), 30)
        return time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(10)


def rss_kib(pids: list[int]) -> int:
    """Resident memory of ``pids`` in KiB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    baseline, ups, downs, readies, memory = [], [], [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="soong-bench-") as tmp:
            env = _env(Path(tmp))
            os.environ.update(env)
            import keyring.core

            keyring.core._keyring_backend = None
            baseline.append(emulator_alone(env))
            ups.append(_soong(env, "sandbox", "up", "--boot-delay", "0"))
            from soong.sandbox import processes
            from soong.sandbox.manager import Sandbox
            from soong.testing.sandbox import SandboxHandle

            handle = SandboxHandle(Sandbox(env))
            start = time.perf_counter()
            inst = handle.launch()
            handle.wait_running(inst.id, identified=False)
            readies.append(time.perf_counter() - start)
            pids = [m for c in ("daemon", "standin") for m in processes.group_members(handle.process(inst.id, c).pid)]
            memory.append(rss_kib(pids))
            downs.append(_soong(env, "sandbox", "down"))
    med = statistics.median
    print(f"emulator alone (baseline)      : {med(baseline) * 1000:7.0f} ms")
    print(f"soong sandbox up               : {med(ups) * 1000:7.0f} ms   ratio {med(ups) / med(baseline):.2f}x the emulator alone")
    print(f"launch -> daemon and stand-in  : {med(readies) * 1000:7.0f} ms   ratio {med(readies) / med(baseline):.2f}x the emulator alone")
    print(f"soong sandbox down (1 instance): {med(downs) * 1000:7.0f} ms")
    print(f"memory of one instance         : {med(memory) / 1024:7.1f} MiB RSS (daemon master, workers, enforcer; stand-in)")


if __name__ == "__main__":
    main()
