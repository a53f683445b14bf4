"""Run inside a network namespace of its own: the daemon's activity sources while only probes reach the services.

``python -m tests.daemon.probe_trial CONFIG_JSON`` (run by test_activity_probes under
``unshare --net``, so SGLang's and n8n's fixed ports 8000 and 5678 are free): the model
stand-in serves on 127.0.0.1:8000 as SGLang would; something holds a connection to
5678 open, as an idle browser tab on n8n's editor or a forwarded connection of the tunnel
does; the daemon's sources are built from the daemon config soong's bootstrap renders
(CONFIG_JSON), and polled around health and metrics probes, then around a real request.
Prints one JSON object: what each step observed.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import requests

from soong_daemon.activity import SshSource, default_sources, poll_all
from soong_daemon.config import parse_config


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _observe(sources) -> dict:
    out = {o.source: o.status for o in poll_all(sources)}
    ssh = next(s for s in sources if isinstance(s, SshSource))
    out["forwarded_connections"] = ssh.forwarded_connections()
    return out


def main() -> int:
    config = parse_config(json.loads(sys.argv[1]))
    standin = subprocess.Popen([sys.executable, "-m", "soong.sandbox.standin_server", "--bind", "127.0.0.1:8000",
                                "--model", config.model], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listener = socket.create_server(("127.0.0.1", 5678))
    try:
        _wait_port(8000)
        sources = default_sources(config.sglang_metrics_url, config.n8n_metrics_url, config.forwarded_ports)
        steps = {"baseline": _observe(sources)}
        held = socket.create_connection(("127.0.0.1", 5678))
        accepted, _ = listener.accept()
        base = "http://127.0.0.1:8000"
        for _ in range(3):  # soong's readiness and status checks, wait-http, a monitoring probe
            assert requests.get(base + "/health", timeout=5).status_code == 200
            requests.get(base + "/metrics", timeout=5)
            requests.get(base + "/v1/models", timeout=5)
        steps["probes"] = _observe(sources)
        requests.post(base + "/v1/chat/completions", timeout=10,
                      json={"model": config.model, "messages": [{"role": "user", "content": "hello"}]})
        steps["request"] = _observe(sources)
        steps["after"] = _observe(sources)
        held.close()
        accepted.close()
        print(json.dumps({"forwarded_ports": list(config.forwarded_ports), "steps": steps}))
        return 0
    finally:
        listener.close()
        standin.terminate()
        standin.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
