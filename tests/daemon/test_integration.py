"""The real daemon under gunicorn (2 workers) on a loopback port, against the Lambda API emulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
import yaml

from soong.testing.emulator import run_emulator
from soong.testing.net import free_port, wait_for_port
from tests.daemon.conftest import API_KEY, TOKEN, instance_status, launch_instance, write_secret

pytestmark = pytest.mark.slow

VENV_BIN = Path(sys.executable).parent
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def emulator():
    with run_emulator("--boot-delay", "0", "--rate-limit", "off", "--launch-rate-limit", "off",
                      api_key=API_KEY) as handle:
        yield handle


def enforcer_pids(config_path: Path) -> list[int]:
    """Enforcer processes started for this config file."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"soong_daemon.enforcer" in cmdline and str(config_path).encode() in cmdline:
            pids.append(int(entry))
    return pids


class Daemon:
    """``soong-daemon --config FILE`` as a process group of its own."""

    def __init__(self, tmp_path: Path, **settings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        secrets = tmp_path / "secrets"
        secrets.mkdir(mode=0o700, exist_ok=True)
        config = {
            "provider_api_url": settings.pop("provider_api_url"),
            "launched_at": datetime.now(timezone.utc).isoformat(),
            "bind": f"127.0.0.1:{self.port}", "workers": 2,
            "state_dir": str(tmp_path / "state"), "token_file": str(write_secret(secrets / "token", TOKEN)),
            "api_key_file": str(write_secret(secrets / "api-key", API_KEY)),
            "boot_log": str(tmp_path / "boot.log"), "sglang_metrics_url": "", "n8n_metrics_url": "",
            "forwarded_ports": [], "wall": False, "poweroff_command": [], "check_interval_seconds": 0.2,
            **settings,
        }
        self.config_path = tmp_path / "daemon.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp_path / "daemon.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([str(VENV_BIN / "soong-daemon"), "--config", str(self.config_path)],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        try:
            wait_for_port(self.port, timeout=20)
        except TimeoutError:
            raise AssertionError(self.log_path.read_text()) from None

    def get(self, path: str) -> dict:
        response = requests.get(self.url + path, headers=AUTH, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        return requests.post(self.url + path, json=body, headers=AUTH, timeout=5)

    def wait_for(self, predicate, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status = self.get("/status")
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not reached; last status: {status}\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def kill_all(self) -> None:
        """SIGKILL the whole process group, like a crash of the unit, and wait for it to be gone."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until every process of the group (workers too) is gone
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise AssertionError("the daemon's processes did not go away after SIGKILL")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@pytest.fixture
def daemons():
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.stop()
        log = daemon.log_path.read_text() if daemon.log_path.exists() else ""
        assert TOKEN not in log and API_KEY not in log


def test_a_short_lease_ends_with_the_instance_terminated(tmp_path, emulator, daemons):
    instance_id = launch_instance(emulator, "soong-int-lease")
    daemon = Daemon(tmp_path, provider_api_url=emulator.url, instance_id="", instance_name="soong-int-lease",
                    lease_hours=1, time_scale=1800, idle_timeout_minutes=10080)  # a one-hour lease in 2 s
    daemons.append(daemon)
    daemon.start()
    assert requests.get(daemon.url + "/health", timeout=5).json() == {"status": "ok"}
    status = daemon.wait_for(lambda s: (s["termination"] or {}).get("outcome") == "verified")
    assert status["instance_id"] == instance_id
    assert status["shutdown"]["reason"] == "lease_expired"
    assert instance_status(emulator, instance_id) in {"terminating", "terminated", "gone"}
    terminate_calls = [e for e in emulator.requests() if e["path"] == "/instance-operations/terminate"]
    assert len(terminate_calls) == 1
    assert len(enforcer_pids(daemon.config_path)) == 1
    daemon.stop()
    assert daemon.proc.returncode == 0
    assert enforcer_pids(daemon.config_path) == []


def test_sigkill_and_restart_keep_the_lease_end(tmp_path, emulator, daemons):
    instance_id = launch_instance(emulator, "soong-int-restart")
    daemon = Daemon(tmp_path, provider_api_url=emulator.url, instance_id=instance_id, lease_hours=4)
    daemons.append(daemon)
    daemon.start()
    assert daemon.post("/extend", {"hours": 1.5}).status_code == 200
    before = daemon.wait_for(lambda s: s["enforcer"]["running"])
    assert len(enforcer_pids(daemon.config_path)) == 1

    daemon.kill_all()
    assert enforcer_pids(daemon.config_path) == []
    daemon.start()
    after = daemon.wait_for(lambda s: s["enforcer"]["running"])
    assert after["lease"]["end"] == before["lease"]["end"]
    assert after["hard_limit"]["at"] == before["hard_limit"]["at"]
    assert after["lease"]["granted_hours"] == 1.5
    refused = daemon.post("/extend", {"hours": 3})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "past_hard_limit"
    assert len(enforcer_pids(daemon.config_path)) == 1
    assert instance_status(emulator, instance_id) == "active"


def test_the_enforcer_is_restarted_by_the_master_and_stops_with_it(tmp_path, emulator, daemons):
    instance_id = launch_instance(emulator, "soong-int-supervise")
    daemon = Daemon(tmp_path, provider_api_url=emulator.url, instance_id=instance_id)
    daemons.append(daemon)
    daemon.start()
    daemon.wait_for(lambda s: s["enforcer"]["running"])
    [first] = enforcer_pids(daemon.config_path)
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pids = enforcer_pids(daemon.config_path)
        if pids and pids != [first]:
            break
        time.sleep(0.1)
    [second] = enforcer_pids(daemon.config_path)
    assert second != first
    log = daemon.log_path.read_text()
    assert f"the enforcer process (pid {first}) was killed by SIGKILL; starting it again" in log
    assert "exited with status 0" not in log
    os.kill(daemon.proc.pid, signal.SIGKILL)  # only the master: the enforcer must not outlive it
    deadline = time.monotonic() + 10
    while enforcer_pids(daemon.config_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert enforcer_pids(daemon.config_path) == []


def test_bad_config_stops_start_up_with_one_line(tmp_path, emulator):
    daemon = Daemon(tmp_path, provider_api_url=emulator.url, instance_id="x", lease_hours=12)
    result = subprocess.run([str(VENV_BIN / "soong-daemon"), "--config", str(daemon.config_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "soong-daemon: config key 'lease_hours': must not exceed hard_limit_hours (8)"]
    assert "Traceback" not in result.stderr
    os.chmod(tmp_path / "secrets" / "token", 0o644)
    daemon.config_path.write_text(daemon.config_path.read_text().replace("lease_hours: 12", "lease_hours: 2"))
    result = subprocess.run([str(VENV_BIN / "soong-daemon"), "--config", str(daemon.config_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "config key 'token_file'" in result.stderr and TOKEN not in result.stderr


def test_two_daemons_on_one_machine_do_not_collide(tmp_path, emulator, daemons):
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    ctl = second_dir / "gunicorn.ctl"
    first = Daemon(first_dir, provider_api_url=emulator.url, instance_id="inst-a")
    second = Daemon(second_dir, provider_api_url=emulator.url, instance_id="inst-b", control_socket=str(ctl))
    daemons.extend([first, second])
    first.start()
    second.start()
    assert first.wait_for(lambda s: s["enforcer"]["running"])["instance_id"] == "inst-a"
    assert second.wait_for(lambda s: s["enforcer"]["running"])["instance_id"] == "inst-b"
    assert ctl.is_socket()
    assert not (Path(os.environ["HOME"]) / ".gunicorn").exists()
    assert len(enforcer_pids(first.config_path)) == 1 and len(enforcer_pids(second.config_path)) == 1
