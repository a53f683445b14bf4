"""The enforcer as the instance runs it, ``soong-daemon --role enforcer`` (its own unit): it needs no web server.

Trials against the Lambda emulator: the web server's port taken by another
socket, a full disk, and the readiness systemd waits for.
"""

from __future__ import annotations

import json
import os
import socket

import pytest

from soong.testing.emulator import run_emulator
from soong.testing.net import free_port
from tests.daemon.conftest import API_KEY, launch_instance
from tests.daemon.disk import fill, small_tmpfs
from tests.daemon.processes import Role, terminate_calls, wait_until, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emulator():
    with run_emulator("--boot-delay", "0", "--rate-limit", "off", "--launch-rate-limit", "off",
                      "--terminate-delay", "0", api_key=API_KEY) as handle:
        yield handle


@pytest.fixture
def roles():
    started: list[Role] = []
    yield started
    for role in started:
        role.stop()


def verified(state_path):
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        return None
    return (state.get("termination") or {}).get("outcome") == "verified" and state


def test_with_the_port_taken_the_web_server_fails_and_the_enforcer_still_ends_the_lease(tmp_path, emulator, roles):
    instance_id = launch_instance(emulator, "soong-squat")
    emulator.clear_requests()
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    try:
        # a one-hour lease in 2 s (time_scale 1800), ending in the instance's termination through the API
        config = write_config(tmp_path, provider_api_url=emulator.url, instance_id=instance_id,
                              bind=f"127.0.0.1:{port}", lease_hours=1, time_scale=1800)
        web = Role(config, "--role", "web", name="web")
        enforcer = Role(config, "--role", "enforcer", name="enforcer")
        roles.extend([web, enforcer])
        wait_until(lambda: terminate_calls(emulator), 30, "a terminate call", enforcer.log)
        state = wait_until(lambda: verified(tmp_path / "state" / "state.json"), 30, "a verified termination",
                           enforcer.log)
        assert state["shutdown"]["reason"] == "lease_expired" and state["instance_id"] == instance_id
        assert len(terminate_calls(emulator)) == 1
        web.proc.wait(60)  # gunicorn gives up binding after its retries; systemd would restart it
        assert web.proc.returncode != 0 and "Address already in use" in web.log()
        assert enforcer.proc.poll() is None  # enforcing on, whatever became of the web server
    finally:
        squatter.close()


def test_a_full_disk_does_not_stop_the_enforcer_ending_the_lease(tmp_path, emulator, roles):
    instance_id = launch_instance(emulator, "soong-full-disk")
    emulator.clear_requests()
    with small_tmpfs(tmp_path / "disk") as disk:
        # a one-hour lease in 12 s: long enough to fill the disk after the first state was written
        config = write_config(tmp_path, provider_api_url=emulator.url, instance_id=instance_id,
                              state_dir=str(disk / "state"), lease_hours=1, time_scale=300)
        enforcer = Role(config, "--role", "enforcer", name="enforcer")
        roles.append(enforcer)
        state_path = disk / "state" / "state.json"
        wait_until(lambda: state_path.exists() and json.loads(state_path.read_text()).get("enforcer"), 10,
                   "the first state", enforcer.log)
        filler = fill(disk)
        wait_until(lambda: terminate_calls(emulator), 40, "a terminate call despite the full disk", enforcer.log)
        wait_until(lambda: "termination confirmed by the API" in enforcer.log(), 20, "the confirmation", enforcer.log)
        assert json.loads(state_path.read_text())["shutdown"] is None  # decided from memory: the disk is full
        log = enforcer.log()
        errors = log.count("CANNOT WRITE THE STATE")
        assert 1 <= errors <= 6, log  # about one per 5 s retry, not one per 0.2 s check
        filler.unlink()
        state = wait_until(lambda: verified(state_path), 15, "the state saved once there is room", enforcer.log)
        assert state["shutdown"]["reason"] == "lease_expired"
        assert "can be written again" in enforcer.log()
        assert len(terminate_calls(emulator)) == 1
        enforcer.stop()


def test_the_enforcer_tells_systemd_it_is_ready(tmp_path, emulator, roles):
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(20)
    try:
        config = write_config(tmp_path, provider_api_url=emulator.url, instance_id="not-launched",
                              bind=f"127.0.0.1:{free_port()}")
        enforcer = Role(config, "--role", "enforcer", env=dict(os.environ, NOTIFY_SOCKET=str(notify_path)))
        roles.append(enforcer)
        message = listener.recv(4096).decode()
    finally:
        listener.close()
    assert message.splitlines()[0] == "READY=1"
    assert (tmp_path / "state" / "enforcer.lock").read_text().strip() == str(enforcer.proc.pid)
