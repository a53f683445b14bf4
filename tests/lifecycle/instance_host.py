"""Plays the GPU machines of emulator instances for end-to-end tests.

Once the emulator reports an instance active, :class:`InstanceHost` reads the
user data that instance was launched with (through the emulator's admin API),
takes the status daemon's config and secrets out of it
(:func:`soong.core.bootstrap.extract_daemon_bundle`) and starts on the
instance's own loopback address:

* the real ``soong_daemon`` under gunicorn, with that config (paths moved to a
  temporary folder, bound to ``<instance ip>:<daemon port>``), talking to the
  emulator's API with the key from the user data;
* the SGLang stand-in (``soong.sandbox.model_standin``) on ``<instance ip>:8000``,

and writes the boot log the bootstrap would (``daemon-up``, ``sglang-loading``,
then ``sglang-ready`` when the stand-in answers). ``hold`` keeps an instance
without daemon (as if still installing) until :meth:`release`; ``model_delay``
keeps SGLang loading for a while; ``model_fails`` logs ``sglang-failed`` instead; ``bind_port``
binds the daemon elsewhere than the port soong dials (for a proxy in between). Processes of an instance that ends are
stopped; :meth:`close` stops everything.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from soong.core.bootstrap import SGLANG_PORT, extract_daemon_bundle
from soong.testing.net import wait_for_port

VENV_BIN = Path(sys.executable).parent


def _write_secret(path: Path, value: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return path


def _phase(path: Path, phase: str, message: str) -> None:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{stamp} phase={phase} {message}\n")


class Machine:
    """The processes of one instance."""

    def __init__(self, instance: dict, folder: Path) -> None:
        self.instance = instance
        self.folder = folder
        self.procs: list[subprocess.Popen] = []
        self.boot_log = folder / "boot.log"
        self.daemon_url = ""

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


class InstanceHost:
    """See the module docstring."""

    def __init__(self, emu, folder: Path, daemon_port: int, *, hold: bool = False, model_delay: float = 0.0,
                 check_interval: float = 0.5, model_fails: bool = False, bind_port: int | None = None,
                 serve_model: bool = True) -> None:
        self.emu = emu
        self.folder = folder
        self.daemon_port = daemon_port
        self.hold = hold
        self.model_delay = model_delay
        self.check_interval = check_interval
        self.model_fails = model_fails
        self.bind_port = bind_port or daemon_port
        self.serve_model = serve_model
        self.machines: dict[str, Machine] = {}
        self.released: set[str] = set()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="instance-host", daemon=True)

    def __enter__(self) -> "InstanceHost":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def release(self, instance_id: str) -> None:
        """Let a held instance come up."""
        self.released.add(instance_id)

    def close(self) -> None:
        """Stop every process started."""
        self._stop.set()
        self._thread.join(20)
        for machine in self.machines.values():
            machine.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for inst in self.emu.instances():
                    machine = self.machines.get(inst["id"])
                    if inst["status"] == "active" and machine is None and (not self.hold or inst["id"] in self.released):
                        self.machines[inst["id"]] = self._bring_up(inst)
                    elif inst["status"] in ("terminated", "gone") and machine is not None and machine.procs:
                        machine.stop()
                        machine.procs = []
            except Exception as exc:  # recorded; a test that needs the machine fails on its own
                self.errors.append(repr(exc))
            self._stop.wait(0.05)

    def _spawn(self, machine: Machine, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(machine.folder / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=machine.folder)
        log.close()
        machine.procs.append(proc)
        return proc

    def _bring_up(self, inst: dict) -> Machine:
        ip = inst["ip"]
        machine = Machine(inst, self.folder / inst["id"])
        machine.folder.mkdir(mode=0o700, parents=True)
        bundle = extract_daemon_bundle(self.emu.user_data(inst["id"]))
        config = dict(bundle.config)
        config.update({
            "bind": f"{ip}:{self.bind_port}", "workers": 2,
            "state_dir": str(machine.folder / "state"),
            "token_file": str(_write_secret(machine.folder / "token", bundle.token)),
            "api_key_file": str(_write_secret(machine.folder / "api-key", bundle.api_key)),
            "boot_log": str(machine.boot_log),
            "sglang_metrics_url": f"http://{ip}:{SGLANG_PORT}/metrics", "n8n_metrics_url": "",
            "forwarded_ports": [], "poweroff_command": [], "wall": False, "control_socket": "",
            "check_interval_seconds": self.check_interval,
        })
        path = machine.folder / "daemon.yaml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(config, handle)
        self._spawn(machine, "daemon", [sys.executable, "-m", "soong_daemon.cli", "--config", str(path)])
        wait_for_port(self.bind_port, ip, timeout=30)
        machine.daemon_url = f"http://{ip}:{self.bind_port}"
        _phase(machine.boot_log, "daemon-up", f"status daemon answers on {ip}:{self.bind_port}")
        _phase(machine.boot_log, "sglang-loading", f"loading {config.get('model')}")
        if self.serve_model:
            threading.Thread(target=self._model, args=(machine, ip, config.get("model") or "model"),
                             daemon=True).start()
        return machine

    def _model(self, machine: Machine, ip: str, model: str) -> None:
        time.sleep(self.model_delay)
        if self._stop.is_set():
            return
        if self.model_fails:
            _phase(machine.boot_log, "sglang-failed", "SGLang exited; see journalctl -u soong-sglang")
            return
        self._spawn(machine, "model", [str(VENV_BIN / "gunicorn"), "--workers", "1", "--no-control-socket",
                                       "--bind", f"{ip}:{SGLANG_PORT}", f"soong.sandbox.model_standin:create_app({model!r})"])
        try:
            wait_for_port(SGLANG_PORT, ip, timeout=30)
        except TimeoutError as exc:
            self.errors.append(str(exc))
            return
        _phase(machine.boot_log, "sglang-ready", f"SGLang stand-in serves {model} on {ip}:{SGLANG_PORT}")
