"""The plumbum-ssh backend's hard cases: ports lost in a race, a killed soong, foreign records, pids."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from soong.commands.tunnel import plan_forwards
from soong.core.errors import UsageError
from soong.core.local_ports import PortInUseError, port_answers, port_is_free
from soong.core.tunnel_state import TunnelStore
from soong.core.types import Forward, TunnelTarget
from soong.plugins.plumbum_ssh import backend as backend_module
from soong.plugins.plumbum_ssh.process import is_our_process, is_running
from soong.testing.tunnel_contract import RemoteHttpServer, fetch
from tests.conftest import VENV_BIN


@pytest.fixture
def squatter():
    """A port held by another listener (this test process)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _target() -> TunnelTarget:
    return TunnelTarget(instance_id="inst-one", host="127.0.0.1", name="box-one")


def test_a_port_taken_between_check_and_bind_is_caught_by_ssh(lab, squatter, monkeypatch):
    """The check passes (as if the port was free a moment ago); ssh's ExitOnForwardFailure catches the loss."""
    monkeypatch.setattr(backend_module, "port_is_free", lambda port, host="127.0.0.1": True)
    backend = lab.context().tunnel_backend("plumbum-ssh")
    with pytest.raises(PortInUseError) as caught:
        backend.start(_target(), [Forward("status", squatter, 9)])
    assert caught.value.port == squatter
    assert f"local port {squatter} (status) is already in use by pid {os.getpid()}" in str(caught.value)
    assert backend.list() == []
    assert not (lab.tunnels_dir / "inst-one.json").exists()


def test_a_port_the_backend_picked_and_lost_is_picked_again(lab, squatter, monkeypatch):
    real = backend_module.any_free_port
    handed = []

    def first_a_taken_one(avoid=frozenset(), host="127.0.0.1"):
        port = squatter if not handed else real(avoid=avoid, host=host)
        handed.append(port)
        return port

    monkeypatch.setattr(backend_module, "any_free_port", first_a_taken_one)
    backend = lab.context().tunnel_backend("plumbum-ssh")
    with RemoteHttpServer() as remote:
        with backend.open(_target(), [Forward("web", 0, remote.port)]) as opened:
            assert handed[0] == squatter and opened[0].local_port == handed[-1] != squatter
            assert fetch("127.0.0.1", opened[0].local_port) == remote.token


def test_default_ports_move_to_the_next_free_one_but_explicit_ones_do_not(lab, squatter, monkeypatch):
    context = lab.context()
    planned = {f.name: f for f in plan_forwards(context, {})}
    assert set(planned) == {"sglang", "n8n", "status"}
    assert planned["sglang"].remote_port == 8000 and planned["n8n"].remote_port == 5678
    assert planned["status"].remote_port == 8080
    for name, default in (("sglang", 8000), ("n8n", 5678), ("status", 8080)):
        assert planned[name].local_port >= default and port_is_free(planned[name].local_port)
    monkeypatch.setenv("SOONG_TUNNEL_STATUS_PORT", str(squatter))
    with pytest.raises(PortInUseError, match=f"local port {squatter} \\(status\\)"):
        plan_forwards(lab.context(), {})
    with pytest.raises(PortInUseError, match=f"local port {squatter} \\(sglang\\).*--sglang-port"):
        plan_forwards(lab.context(), {"sglang": squatter, "status": 0})


def test_switched_off_services_get_no_forward(lab, monkeypatch):
    monkeypatch.setenv("SOONG_SERVICES_N8N", "false")
    assert [f.name for f in plan_forwards(lab.context(), {})] == ["sglang", "status"]


def test_a_killed_soong_leaves_a_recorded_tunnel_that_stop_ends(lab, run_soong, monkeypatch):
    """kill -9 of soong while ssh is still connecting: the record already exists, so nothing is orphaned."""
    with socket.socket() as silent:  # accepts TCP (kernel backlog) but never speaks SSH
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("SOONG_SSH_PORT", str(silent.getsockname()[1]))
        soong = subprocess.Popen([str(VENV_BIN / "soong"), "tunnel", "start", "--sglang-port", "0", "--n8n-port", "0",
                                  "--status-port", "0"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env=dict(os.environ))
        record_file = lab.tunnels_dir / "inst-one.json"
        deadline = time.monotonic() + 20
        while not record_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        soong.send_signal(signal.SIGKILL)
        soong.wait()
        record = json.loads(record_file.read_text())
        assert record["state"] == "starting"
        assert is_our_process(record["pid"], record["command"])

        status = run_soong("tunnel", "status", "-f", "value", "-c", "Instance", "-c", "PID", "-c", "Alive")
        assert status.stdout.split() == ["inst-one", str(record["pid"]), "no"]
        stop = run_soong("tunnel", "stop", "--instance-id", "inst-one")
        assert stop.returncode == 0, stop.stderr
        deadline = time.monotonic() + 5
        while is_running(record["pid"]) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not is_running(record["pid"])
        assert not record_file.exists()


def test_a_tunnel_of_another_backend_is_not_replaced(lab):
    context = lab.context()
    with RemoteHttpServer() as remote:
        context.tunnel_backend("direct").start(_target(), [Forward("web", 0, remote.port)])
        with pytest.raises(UsageError, match="already has a tunnel of backend 'direct'"):
            context.tunnel_backend("plumbum-ssh").start(_target(), [Forward("web", 0, remote.port)])
        assert context.tunnel_backend("plumbum-ssh").close("inst-one") is False
        assert context.tunnel_backend("direct").close("inst-one") is True


def test_starting_twice_is_refused_while_the_first_runs(lab):
    backend = lab.context().tunnel_backend("plumbum-ssh")
    with RemoteHttpServer() as remote:
        first = backend.start(_target(), [Forward("web", 0, remote.port)])
        with pytest.raises(UsageError, match=f"already has a tunnel \\(pid {first.pid}\\)"):
            backend.start(_target(), [Forward("web", 0, remote.port)])
        assert backend.close("inst-one")
        assert not port_answers(first.forwards[0].local_port, timeout=0.5)


def test_pid_identity_needs_the_exact_command_line():
    from soong.testing.polling import wait_until

    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        # Until the child has exec'd, its /proc cmdline is still this Python's (a loaded machine shows that gap).
        wait_until(lambda: is_our_process(sleeper.pid, ["sleep", "30"]), timeout=20, what="sleep exec'd")
        assert not is_our_process(sleeper.pid, ["/usr/bin/ssh", "-N", "host"])
        assert not is_our_process(None, ["sleep", "30"])
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not is_running(sleeper.pid)


def test_unreadable_records_are_dropped(lab):
    store = TunnelStore(lab.state_dir)
    store.dir.mkdir(parents=True)
    (store.dir / "broken.json").write_text("{not json")
    (store.dir / "other.json").write_text(json.dumps({"instance_id": "../x"}))
    assert store.all() == []
    assert list(store.dir.glob("*.json")) == []
    assert store.load("inst-one") is None


FOREGROUND_SCRIPT = """
import sys, time
from soong.core.context import Context
from soong.core.types import Forward, TunnelTarget
backend = Context().tunnel_backend("plumbum-ssh")
with backend.open(TunnelTarget("inst-one", "127.0.0.1"), [Forward("web", 0, int(sys.argv[1]))]) as opened:
    print(opened[0].local_port, flush=True)
    time.sleep(60)
"""


def test_a_foreground_tunnel_dies_with_a_killed_soong(lab, tmp_path):
    from tests.ssh.conftest import _ssh_processes_mentioning

    with RemoteHttpServer() as remote:
        owner = subprocess.Popen([str(VENV_BIN / "python"), "-c", FOREGROUND_SCRIPT, str(remote.port)],
                                 stdout=subprocess.PIPE, text=True, env=dict(os.environ))
        try:
            local_port = int(owner.stdout.readline())
            assert fetch("127.0.0.1", local_port) == remote.token
            assert len(_ssh_processes_mentioning(str(tmp_path))) == 1
        finally:
            owner.kill()
            owner.wait()
            owner.stdout.close()
        deadline = time.monotonic() + 5
        while _ssh_processes_mentioning(str(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _ssh_processes_mentioning(str(tmp_path)) == []
        assert not port_answers(local_port, timeout=0.5)
    backend = lab.context().tunnel_backend("plumbum-ssh")
    assert backend.list() == []
    assert list(lab.tunnels_dir.glob(".open-*.log")) == []
