"""``soong tunnel start|stop|status`` as a user runs them, against the private sshd."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

from soong.core.local_ports import port_answers
from soong.plugins.plumbum_ssh.process import command_line
from soong.testing.net import free_port
from soong.testing.tunnel_contract import RemoteHttpServer, fetch
from tests.ssh.conftest import instance


def _ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def _start(run_soong, monkeypatch, lab, remote_port: int, instance_id: str | None = None, *extra: str):
    """``soong tunnel start`` with explicit free local ports; the status daemon's remote port is ``remote_port``."""
    monkeypatch.setenv("SOONG_STATUS_DAEMON_PORT", str(remote_port))
    sglang, n8n, status = _ports(3)
    args = ["tunnel", "start", "--sglang-port", str(sglang), "--n8n-port", str(n8n), "--status-port", str(status)]
    if instance_id:
        args += ["--instance-id", instance_id]
    result = run_soong(*args, *extra)
    return result, {"sglang": sglang, "n8n": n8n, "status": status}


def test_start_fetch_status_stop(lab, run_soong, monkeypatch):
    with RemoteHttpServer() as daemon:
        result, ports = _start(run_soong, monkeypatch, lab, daemon.port)
        assert result.returncode == 0, result.stderr
        assert "is up" in result.stderr
        assert f"127.0.0.1:{ports['status']}" in result.stdout and f"127.0.0.1:{daemon.port}" in result.stdout

        # the fetch goes through ssh: local status port -> sshd -> the daemon's port
        assert fetch("127.0.0.1", ports["status"]) == daemon.token

        record = lab.record("inst-one")
        assert record["instance_id"] == "inst-one" and record["backend"] == "plumbum-ssh"
        assert {f["name"]: f["local_port"] for f in record["forwards"]} == ports
        assert record["started_at"] and record["state"] == "up"
        assert command_line(record["pid"]) == tuple(record["command"])
        assert "StrictHostKeyChecking=accept-new" in record["command"]
        assert "HostKeyAlias=soong-inst-one" in record["command"]
        assert not any("StrictHostKeyChecking=no" in part for part in record["command"])

        status = run_soong("tunnel", "status", "-f", "json")
        assert status.returncode == 0, status.stderr
        assert '"Alive": "yes"' in status.stdout and str(record["pid"]) in status.stdout
        assert f"status 127.0.0.1:{ports['status']}->{daemon.port}" in status.stdout

        again = run_soong("tunnel", "start")
        assert again.returncode == 0 and "already running" in again.stderr
        assert lab.record("inst-one")["pid"] == record["pid"]

        stop = run_soong("tunnel", "stop", "--instance-id", "inst-one")
        assert stop.returncode == 0, stop.stderr
        assert "stopped tunnel to inst-one" in stop.stdout
        assert not any(port_answers(p, timeout=0.5) for p in ports.values())
        assert not (lab.tunnels_dir / "inst-one.json").exists()
        assert run_soong("tunnel", "status", "-f", "value").stdout.strip() == ""


def test_a_taken_port_is_named(lab, run_soong, monkeypatch):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        result = run_soong("tunnel", "start", "--status-port", str(taken), "--sglang-port", str(free_port()),
                           "--n8n-port", str(free_port()))
    assert result.returncode == 2
    assert f"local port {taken} (status) is already in use" in result.stderr
    assert "--status-port" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (lab.tunnels_dir / "inst-one.json").exists()


def test_a_port_taken_by_a_configured_value_is_named_too(lab, run_soong, monkeypatch):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        monkeypatch.setenv("SOONG_TUNNEL_N8N_PORT", str(taken))
        result = run_soong("tunnel", "start", "--status-port", str(free_port()), "--sglang-port", str(free_port()))
    assert result.returncode == 2
    assert f"local port {taken} (n8n) is already in use" in result.stderr and "tunnel.n8n_port" in result.stderr


def test_a_dead_tunnel_is_detected_and_cleaned(lab, run_soong, monkeypatch):
    with RemoteHttpServer() as daemon:
        result, ports = _start(run_soong, monkeypatch, lab, daemon.port)
        assert result.returncode == 0, result.stderr
        pid = lab.record("inst-one")["pid"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while port_answers(ports["status"], timeout=0.2) and time.monotonic() < deadline:
            time.sleep(0.02)

        status = run_soong("tunnel", "status", "-f", "value", "-c", "Instance", "-c", "Alive")
        assert status.returncode == 0, status.stderr
        assert status.stdout.split() == ["inst-one", "dead", "(removed)"]
        assert not (lab.tunnels_dir / "inst-one.json").exists()
        assert run_soong("tunnel", "status", "-f", "value").stdout.strip() == ""

        # and a new tunnel can be started in its place
        result, ports = _start(run_soong, monkeypatch, lab, daemon.port)
        assert result.returncode == 0, result.stderr
        assert fetch("127.0.0.1", ports["status"]) == daemon.token
        assert run_soong("tunnel", "stop", "--all").returncode == 0


def test_a_recorded_pid_that_is_no_longer_ssh_is_never_signalled(lab, run_soong, monkeypatch):
    with RemoteHttpServer() as daemon:
        result, _ports = _start(run_soong, monkeypatch, lab, daemon.port)
        assert result.returncode == 0, result.stderr
    record = lab.record("inst-one")
    assert run_soong("tunnel", "stop", "--all").returncode == 0
    # the pid now belongs to an unrelated process (as after a reboot)
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        record["pid"] = bystander.pid
        lab.tunnels_dir.mkdir(parents=True, exist_ok=True)
        (lab.tunnels_dir / "inst-one.json").write_text(json.dumps(record))
        stop = run_soong("tunnel", "stop", "--instance-id", "inst-one")
        assert stop.returncode == 0, stop.stderr
        assert "removed the record of the dead tunnel to inst-one" in stop.stdout
        assert bystander.poll() is None, "an unrelated process was signalled"
        assert not (lab.tunnels_dir / "inst-one.json").exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_stop_without_an_id_refuses_to_guess_between_tunnels(lab, run_soong, monkeypatch):
    lab.set_instances(instance("inst-one", "box-one"), instance("inst-two", "box-two"))
    with RemoteHttpServer() as daemon:
        for instance_id in ("inst-one", "inst-two"):
            result, _ports = _start(run_soong, monkeypatch, lab, daemon.port, instance_id)
            assert result.returncode == 0, result.stderr
        stop = run_soong("tunnel", "stop")
        assert stop.returncode == 9
        assert "inst-one" in stop.stderr and "inst-two" in stop.stderr and "--instance-id" in stop.stderr
        assert (lab.tunnels_dir / "inst-one.json").exists() and (lab.tunnels_dir / "inst-two.json").exists()
        stop_all = run_soong("tunnel", "stop", "--all")
        assert stop_all.returncode == 0
        assert "inst-one" in stop_all.stdout and "inst-two" in stop_all.stdout
        assert not list(lab.tunnels_dir.glob("*.json"))


def test_an_instance_without_an_address_is_refused(lab, run_soong):
    lab.set_instances(instance("inst-boot", "booting-box", status="booting", ip=None))
    result = run_soong("tunnel", "start")
    assert result.returncode == 6
    assert "inst-boot has no address yet" in result.stderr
