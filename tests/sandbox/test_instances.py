"""Sandbox instances end to end, through the Python API: real emulator, host, daemons and stand-ins."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from soong.core.ledger import Ledger
from soong.sandbox import processes
from soong.sandbox.layout import read_json
from soong.testing.polling import wait_until


def _gone(pid: int) -> bool:
    return processes.cmdline(pid) is None




def test_instance_gets_daemon_and_stand_in_and_loses_them_when_terminated(sandbox_factory):
    sb = sandbox_factory()
    inst = sb.launch()
    view = sb.wait_instance(inst.id, ("active",))
    record = sb.wait_running(inst.id)
    assert record["ip"] == view["ip"] and view["ip"].startswith("127.") and view["ip"] != "127.0.0.1"

    status = sb.daemon_status(inst.id)
    assert status["instance_id"] == inst.id
    assert status["instance_name"] == inst.name
    assert status["boot"]["phase"] in ("daemon-up", "sglang-ready")
    assert sb.daemon_url(inst.id) == f"http://{view['ip']}:8080"
    reply = sb.chat(inst.id, "hello sandbox")
    assert "hello sandbox" in reply["choices"][0]["message"]["content"]
    assert "stand-in" in reply["choices"][0]["message"]["content"]
    import requests

    models = requests.get(sb.standin_url(inst.id) + "/v1/models", timeout=5,
                          headers={"Authorization": f"Bearer {sb.sglang_api_key(inst.id)}"}).json()
    assert [m["id"] for m in models["data"]] == ["meta-llama/Llama-3.1-8B-Instruct"]
    metrics = requests.get(sb.standin_url(inst.id) + "/metrics", timeout=5).text
    assert 'sglang:num_requests_total{model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.0' in metrics

    pids = [sb.process(inst.id, c).pid for c in ("daemon", "standin")]
    members = [p for pid in pids for p in processes.group_members(pid)]
    assert len(members) >= 4  # daemon master, its workers and enforcer; the stand-in master and worker
    sb.terminate(inst.id)
    sb.wait_instance(inst.id, ("terminated", "gone"))
    wait_until(lambda: all(_gone(p) for p in members), what="the instance's processes ending")
    wait_until(lambda: sb.machine_record(inst.id).get("ended"), what="the host recording the end")


def test_idle_instance_is_terminated_by_its_own_daemon_and_history_says_idle(sandbox_factory, run_soong):
    sb = sandbox_factory(time_scale=600)  # 5 idle minutes last half a second
    inst = sb.launch(idle_timeout_minutes=5)
    view = sb.wait_instance(inst.id, ("terminated", "gone"), timeout=40)
    assert view["terminate_requested_at"] is not None
    record = wait_until(lambda: sb.machine_record(inst.id).get("ended") and sb.machine_record(inst.id), what="the end")
    assert record["shutdown"]["reason"] == "idle"
    with sb.sandbox.admin() as admin:
        terminates = [e for e in admin.requests_log() if e["path"].rstrip("/") == "/instance-operations/terminate"]
    assert terminates and all(e["status"] == 200 for e in terminates[:1])  # this test never asked: the daemon did
    daemon_log = Path(sb.sandbox.layout.instance(inst.id).log("daemon")).read_text()
    assert "termination confirmed by the API" in daemon_log

    result = run_soong("--profile", "sandbox", "history", "-f", "json")
    assert result.returncode == 0, result.stderr
    rows = {row["Instance ID"]: row for row in json.loads(result.stdout)}
    assert rows[inst.id]["State"] == "ended" and rows[inst.id]["Ended by"] == "idle"


def test_daemon_killed_with_sigkill_is_restarted_and_keeps_its_lease(sandbox_factory):
    sb = sandbox_factory()
    inst = sb.launch(lease_hours=1.0)
    sb.wait_running(inst.id)
    extended = sb.daemon(inst.id, "POST", "/extend", {"hours": 1.5})
    assert extended.status_code == 200, extended.text
    before = sb.daemon_status(inst.id)
    old = sb.process(inst.id, "daemon")
    old_group = processes.group_members(old.pid)
    os.kill(old.pid, signal.SIGKILL)

    new = wait_until(lambda: (p := sb.process(inst.id, "daemon")) and p.pid != old.pid and processes.is_running(p) and p,
                what="the daemon starting again")
    wait_until(lambda: _daemon_answers(sb, inst.id), what="the restarted daemon answering")
    after = sb.daemon_status(inst.id)
    assert after["instance_id"] == inst.id
    assert after["lease"]["end"] == before["lease"]["end"] != before["lease"]["initial_end"]
    assert after["lease"]["extensions"] == before["lease"]["extensions"]
    assert sb.machine_record(inst.id)["restarts"] == {"daemon": 1}
    assert new.pid not in old_group
    wait_until(lambda: all(_gone(p) for p in old_group), what="the killed daemon's workers and enforcer ending")


def _daemon_answers(sb, instance_id: str) -> bool:
    try:
        return sb.daemon(instance_id, "GET", "/status").status_code == 200
    except Exception:
        return False


def test_taken_address_is_named_and_the_instance_starts_once_it_is_free(sandbox_factory):
    sb = sandbox_factory()
    ip = read_json(sb.sandbox.layout.credentials)["ip_base"]  # the first instance's address
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind((ip, 8080))
    blocker.listen()
    try:
        inst = sb.launch()
        record = wait_until(lambda: (r := sb.machine_record(inst.id)).get("error") and r, what="the error")
        assert record["error"].startswith(f"{ip}:8080 is already in use by another program")
        row = next(r for r in sb.sandbox.status() if r.instance == inst.id)
        assert (row.component, row.alive) == ("instance", False)
        assert f"error: {ip}:8080 is already in use by another program" in row.note
    finally:
        blocker.close()
    sb.wait_running(inst.id)
    assert sb.machine_record(inst.id)["error"] is None


def test_down_terminates_every_instance_closes_the_ledger_and_leaves_no_process(sandbox_factory):
    sb = sandbox_factory()
    first, second = sb.launch(name="one"), sb.launch(name="two")
    for inst in (first, second):
        sb.wait_running(inst.id)
    pids = [sb.process(i.id, c).pid for i in (first, second) for c in ("daemon", "standin")]
    pids += [sb.sandbox.record("emulator").pid, sb.sandbox.record("host").pid]
    members = {m for pid in pids for m in processes.group_members(pid)}

    report = sb.sandbox.down()
    assert sorted(report.terminated) == sorted([first.id, second.id])
    assert all(_gone(p) for p in members)
    assert not sb.sandbox.leftover_processes()
    ledger = Ledger.for_context(sb.context)
    for inst in (first, second):
        record = ledger.get(inst.id)
        assert (record.state, record.end_reason) == ("ended", "user")
    assert not sb.sandbox.is_up()
    assert sb.sandbox.status()[0].note == "not started"


def test_instance_launched_without_user_data_runs_nothing(sandbox_factory):
    from soong.core.types import LaunchRequest

    sb = sandbox_factory()
    config = sb.context.config
    inst = sb.provider.launch(LaunchRequest(instance_type="gpu_1x_a10", region=config.get("lambda.default_region"),
                                            ssh_key_name=config.get("lambda.ssh_key_name"), name="bare"))
    sb.wait_instance(inst.id, ("active",))
    record = wait_until(lambda: (r := sb.machine_record(inst.id)).get("bare") and r, what="the host looking at it")
    assert "without user data" in record["notes"][0]
    assert sb.process(inst.id, "daemon") is None
    row = next(r for r in sb.sandbox.status() if r.instance == inst.id)
    assert (row.component, row.alive) == ("instance", False) and "without user data" in row.note


@pytest.mark.parametrize("component", ["standin"])
def test_dead_stand_in_is_started_again(sandbox_factory, component):
    sb = sandbox_factory()
    inst = sb.launch()
    sb.wait_running(inst.id)
    old = sb.process(inst.id, component)
    os.killpg(old.pid, signal.SIGKILL)
    wait_until(lambda: (p := sb.process(inst.id, component)) and p.pid != old.pid and processes.is_running(p),
          what="the stand-in starting again")
    sb.wait_running(inst.id)
    assert sb.chat(inst.id, "again")["choices"]


def test_restarted_instance_reboots_its_processes_and_keeps_its_lease(sandbox_factory):
    sb = sandbox_factory()
    inst = sb.launch()
    sb.wait_running(inst.id)
    assert sb.daemon(inst.id, "POST", "/extend", {"hours": 0.5}).status_code == 200
    lease = sb.daemon_status(inst.id)["lease"]
    old = [sb.process(inst.id, c).pid for c in ("daemon", "standin")]
    sb.provider.restart([inst.id])
    sb.wait_instance(inst.id, ("booting",))
    wait_until(lambda: all(_gone(p) for p in old), what="the processes stopping as on a reboot")
    sb.wait_instance(inst.id, ("active",))
    sb.wait_running(inst.id)
    after = sb.daemon_status(inst.id)["lease"]
    assert (after["end"], after["extensions"]) == (lease["end"], lease["extensions"]) and after["granted_hours"] == 0.5
    assert [sb.process(inst.id, c).pid for c in ("daemon", "standin")] != old


def test_a_new_host_adopts_running_instances(sandbox_factory):
    sb = sandbox_factory()
    inst = sb.launch()
    sb.wait_running(inst.id)
    pids = [sb.process(inst.id, c).pid for c in ("daemon", "standin")]
    host = sb.sandbox.record("host").pid
    os.killpg(host, signal.SIGKILL)
    wait_until(lambda: _gone(host), what="the host dying")
    report = sb.sandbox.up(boot_delay=0)
    assert report.kept == ["emulator"] and report.started == ["host"]
    time.sleep(0.5)  # a few passes of the new host
    assert [sb.process(inst.id, c).pid for c in ("daemon", "standin")] == pids
    assert sb.machine_record(inst.id).get("restarts") == {}
    sb.terminate(inst.id)
    wait_until(lambda: all(_gone(p) for p in pids), what="the new host stopping the instance's processes")


def test_host_stops_every_instance_when_the_emulator_is_gone(sandbox_factory):
    sb = sandbox_factory()
    inst = sb.launch()
    sb.wait_running(inst.id)
    members = [m for c in ("daemon", "standin") for m in processes.group_members(sb.process(inst.id, c).pid)]
    host = sb.sandbox.record("host").pid
    os.killpg(sb.sandbox.record("emulator").pid, signal.SIGKILL)
    wait_until(lambda: _gone(host) and all(_gone(p) for p in members), what="the host stopping everything and exiting")
    assert sb.machine_record(inst.id)["ended"] is True
    assert sb.sandbox.leftover_processes() == []
