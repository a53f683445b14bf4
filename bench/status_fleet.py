#!/usr/bin/env python3
"""The fleet ``bench/status.sh`` measures ``soong status`` against.

It starts the Lambda emulator, launches N instances with ``soong start -y
--no-wait`` (so the ledger tracks them), gives each the real status daemon
(configured from the instance's own user data, as in the lifecycle tests)
behind a TCP proxy that waits ``--latency`` seconds before passing each
connection on, and then makes the emulator wait the same latency on every API
request. It writes the environment soong needs to ``--env-file`` and runs until
it gets SIGTERM, then stops everything it started.

    .venv/bin/python bench/status_fleet.py --env-file /tmp/fleet.env [--instances 10] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from soong.testing.emulator import run_emulator  # noqa: E402
from soong.testing.net import free_port  # noqa: E402
from tests.lifecycle.instance_host import InstanceHost  # noqa: E402

BIN = Path(sys.executable).parent


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def start_proxies(pairs: list[tuple[str, int, int]], latency: float) -> threading.Event:
    """Listen on each ``(ip, port)`` and pass connections to ``(ip, backend port)`` after ``latency`` seconds."""
    ready = threading.Event()

    async def serve() -> None:
        async def handler_for(ip: str, backend: int):
            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await asyncio.sleep(latency)
                try:
                    up_reader, up_writer = await asyncio.open_connection(ip, backend)
                except OSError:
                    writer.close()
                    return
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            return handle

        servers = [await asyncio.start_server(await handler_for(ip, backend), ip, port) for ip, port, backend in pairs]
        ready.set()
        await asyncio.gather(*(s.serve_forever() for s in servers))

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True, name="latency-proxies").start()
    ready.wait(10)
    return ready


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", required=True, type=Path)
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ip_base = f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.1"
    with run_emulator("--rate-limit", "off", "--launch-rate-limit", "off", "--boot-delay", "0", "--ip-base", ip_base,
                      api_key="bench-" + secrets.token_hex(8)) as emu, tempfile.TemporaryDirectory() as machines:
        emu.add_ssh_key("me")
        dial_port, bind_port = free_port(), free_port()
        env = {
            "SOONG_LAMBDA_API_URL": emu.url, "LAMBDA_API_KEY": emu.api_key,
            "SOONG_DAEMON_TOKEN": secrets.token_urlsafe(32), "SOONG_TUNNEL_BACKEND": "direct",
            "SOONG_SERVICES_N8N": "false", "SOONG_STATUS_DAEMON_PORT": str(dial_port),
            "SOONG_LAMBDA_REQUEST_INTERVAL_SECONDS": "0", "SOONG_LAMBDA_LAUNCH_INTERVAL_SECONDS": "0",
        }
        os.environ.update(env)
        with InstanceHost(emu, Path(machines), dial_port, bind_port=bind_port, serve_model=False,
                          check_interval=5.0) as host:
            for _ in range(args.instances):
                subprocess.run([str(BIN / "soong"), "start", "-y", "--no-wait"], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while len([m for m in host.machines.values() if m.daemon_url]) < args.instances:
                if time.monotonic() > deadline or host.errors:
                    raise SystemExit(f"the daemons did not all come up: {host.errors}")
                time.sleep(0.1)
            start_proxies([(m.instance["ip"], dial_port, bind_port) for m in host.machines.values()], args.latency)
            emu.add_fault(path="*", action="latency", delay=args.latency)
            args.env_file.write_text("".join(f"export {k}='{v}'\n" for k, v in env.items())
                                     + f"export FLEET_API_URL='{emu.url}'\n")
            print(f"fleet ready: {args.instances} instances, {args.latency:g}s latency", flush=True)
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
