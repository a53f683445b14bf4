"""The command-side daemon client against the real daemon under gunicorn, directly and through an SSH tunnel."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from soong.core.context import Context
from soong.core.daemon_client import DaemonAuthError, DaemonClient, DaemonRefusedError, connect
from soong.core.errors import EXIT_API, EXIT_SECRET, UnreachableError
from soong.core.types import Instance
from soong.testing.net import free_port, wait_for_port
from tests.conftest import TEST_SECRETS
from tests.ssh.conftest import sshd  # noqa: F401 - the session's private sshd

TOKEN = TEST_SECRETS["daemon_token"]
VENV_BIN = Path(sys.executable).parent


def _secret(path: Path, value: str) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return str(path)


@pytest.fixture(scope="module")
def daemon(emulator, tmp_path_factory):
    """A real daemon on 127.0.0.1 for an emulator instance (lease 1 h, hard limit 2 h)."""
    emulator.reset()
    emulator.add_ssh_key("me")
    launched = emulator.api("POST", "/instance-operations/launch", {
        "region_name": "us-east-1", "instance_type_name": "gpu_1x_a10", "ssh_key_names": ["me"], "name": "dc-test"})
    instance_id = launched.json()["data"]["instance_ids"][0]
    folder = tmp_path_factory.mktemp("daemon")
    port = free_port()
    config = {
        "instance_id": instance_id, "instance_name": "dc-test", "provider_api_url": emulator.url,
        "launched_at": dt.datetime.now(dt.timezone.utc).isoformat(), "lease_hours": 1, "hard_limit_hours": 2,
        "bind": f"127.0.0.1:{port}", "workers": 2, "state_dir": str(folder / "state"),
        "token_file": _secret(folder / "token", TOKEN), "api_key_file": _secret(folder / "key", emulator.api_key),
        "boot_log": str(folder / "boot.log"), "sglang_metrics_url": "", "n8n_metrics_url": "",
        "forwarded_ports": [], "poweroff_command": [], "wall": False, "check_interval_seconds": 0.5,
    }
    (folder / "daemon.yaml").write_text(yaml.safe_dump(config))
    with open(folder / "daemon.log", "ab") as log:
        proc = subprocess.Popen([str(VENV_BIN / "soong-daemon"), "--config", str(folder / "daemon.yaml")],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, timeout=30)
        yield {"port": port, "url": f"http://127.0.0.1:{port}", "instance_id": instance_id}
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(20)


def test_status_extend_and_a_refusal_with_its_reason(daemon):
    with DaemonClient(daemon["url"], TOKEN, label="test") as client:
        assert client.health()
        status = client.status()
        assert status["hard_limit"]["seconds_left"] > status["lease"]["seconds_left"] > 0
        granted = client.extend(0.5)
        assert granted["granted_hours"] == 0.5 and granted["lease_end"] > status["lease"]["end"]
        with pytest.raises(DaemonRefusedError) as refused:
            client.extend(5)
    assert refused.value.exit_code == EXIT_API and refused.value.status == 409
    assert "hard limit" in str(refused.value) and refused.value.details["max_hours"] < 5


def test_a_wrong_token_is_a_secret_error_that_says_so(daemon):
    with DaemonClient(daemon["url"], "not-the-token") as client:
        assert client.health()  # /health needs no token
        with pytest.raises(DaemonAuthError) as caught:
            client.status()
    assert caught.value.exit_code == EXIT_SECRET and "daemon_token" in str(caught.value)
    assert "not-the-token" not in str(caught.value)


def test_nothing_listening_is_unreachable():
    with DaemonClient(f"http://127.0.0.1:{free_port()}", TOKEN, label="instance x") as client:
        assert not client.health()
        with pytest.raises(UnreachableError, match="instance x"):
            client.status()


def test_a_daemon_that_never_answers_times_out_quickly():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with DaemonClient(f"http://127.0.0.1:{port}", TOKEN, timeout=(0.5, 0.5)) as client:
            with pytest.raises(UnreachableError, match="in time"):
                client.status()


def test_connect_through_a_foreground_ssh_tunnel(daemon, sshd, monkeypatch):  # noqa: F811
    for key, value in {"SOONG_SSH_USER": sshd.user, "SOONG_SSH_PORT": str(sshd.port),
                       "SOONG_SSH_KEY_PATH": str(sshd.client_key), "SOONG_TUNNEL_BACKEND": "plumbum-ssh",
                       "SOONG_STATUS_DAEMON_PORT": str(daemon["port"]), "SOONG_DAEMON_TOKEN": TOKEN}.items():
        monkeypatch.setenv(key, value)
    context = Context(env=dict(os.environ))
    instance = Instance(id=daemon["instance_id"], status="active", instance_type="gpu_1x_a10", region="us-east-1",
                        ip="127.0.0.1", name="dc-test")
    with connect(context, instance) as client:
        assert client.base_url != daemon["url"]  # a local forward, not the daemon's own address
        assert client.status()["instance_id"] == daemon["instance_id"]
    booting = Instance(id=daemon["instance_id"], status="booting", instance_type="gpu_1x_a10", region="us-east-1")
    with pytest.raises(UnreachableError, match="no address"):
        with connect(context, booting):
            pass
