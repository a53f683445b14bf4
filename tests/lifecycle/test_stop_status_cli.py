"""``soong stop`` and ``soong status`` against the emulator, without a daemon on the instances.

A terminate the API refuses is never taken for success; status keeps every row
when the daemons cannot be reached and shows what soong did not launch.
"""

from __future__ import annotations

import json

from tests.lifecycle.conftest import ledger, live_instances


def launch(run_soong, *args):
    result = run_soong("start", "-y", "--no-wait", *args)
    assert result.returncode == 0, result.stderr
    return ledger().records()[-1].instance_id


def test_stop_terminates_confirms_and_closes_the_ledger_with_the_final_cost(run_soong, soong_env, emu, isolated_env):
    instance_id = launch(run_soong)
    known_hosts = isolated_env / ".local/state/soong/known_hosts"
    known_hosts.write_text(f"soong-{instance_id} ssh-ed25519 AAAAone\nsoong-other ssh-ed25519 AAAAtwo\n")
    emu.configure(terminate_delay=0.3)  # terminating for a moment: stop must wait for terminated
    result = run_soong("stop", "-y")
    assert result.returncode == 0, result.stderr
    assert known_hosts.read_text() == "soong-other ssh-ed25519 AAAAtwo\n"  # addresses get reused
    assert f"terminated {instance_id}" in result.stdout
    assert live_instances(emu) == []
    record = ledger().require(instance_id)
    assert record.state == "ended" and record.end_reason == "user" and record.final_cost_usd is not None
    assert [e.kind for e in ledger().events(instance_id=instance_id)] == ["launched", "terminated"]


def test_a_terminate_the_api_refuses_exits_11_and_leaves_the_record_open(run_soong, soong_env, emu):
    instance_id = launch(run_soong)
    emu.add_fault(path="/instance-operations/terminate", action="error", status=500)
    result = run_soong("stop", "-y", "--instance-id", instance_id)
    assert result.returncode == 11, result.stderr
    assert "NOT confirmed" in result.stderr and "!!!" in result.stderr and "$0.75/h" in result.stderr
    assert [i["id"] for i in live_instances(emu)] == [instance_id]
    record = ledger().require(instance_id)
    assert record.is_open and record.end_requested_reason == "user"
    emu.clear_faults()
    again = run_soong("stop", "-y", "--instance-id", instance_id)
    assert again.returncode == 0, again.stderr
    assert live_instances(emu) == [] and not ledger().require(instance_id).is_open


def test_a_terminate_accepted_but_never_finished_is_unconfirmed(run_soong, soong_env, emu):
    instance_id = launch(run_soong)
    emu.configure(terminate_delay=3600)
    result = run_soong("stop", "-y", env={"SOONG_STOP_WAIT_SECONDS": "1"})
    assert result.returncode == 11, result.stderr
    assert "terminating" in result.stderr
    assert ledger().require(instance_id).is_open


def test_stop_all_ends_soongs_instances_and_leaves_others_alone(run_soong, soong_env, emu):
    mine = [launch(run_soong), launch(run_soong)]
    other = emu.api("POST", "/instance-operations/launch", {
        "region_name": "us-east-1", "instance_type_name": "gpu_1x_a10", "ssh_key_names": ["me"], "name": "console"})
    other_id = other.json()["data"]["instance_ids"][0]
    result = run_soong("stop", "--all", "-y")
    assert result.returncode == 0, result.stderr
    assert other_id in result.stderr and "did not launch" in result.stderr
    assert [i["id"] for i in live_instances(emu)] == [other_id]
    assert all(not ledger().require(i).is_open for i in mine)


def test_status_degrades_per_row_and_shows_untracked_and_ended(run_soong, soong_env, emu):
    kept = launch(run_soong)
    ended = launch(run_soong)
    assert run_soong("stop", "-y", "--instance-id", ended).returncode == 0
    emu.api("POST", "/instance-operations/launch", {
        "region_name": "us-east-1", "instance_type_name": "gpu_1x_a10", "ssh_key_names": ["me"], "name": "console"})
    table = run_soong("status")
    assert table.returncode == 0, table.stderr
    assert kept in table.stdout and ended not in table.stdout
    assert "daemon unreachable" in table.stdout and "(untracked)" in table.stdout
    assert "TOTAL" in table.stdout and "budget:" in table.stdout
    assert "untracked instance" in table.stderr
    rows = json.loads(run_soong("status", "--all", "-f", "json").stdout)
    by_id = {row["Instance ID"]: row for row in rows}
    assert by_id[kept]["Status"] == "active" and by_id[kept]["GPU"].startswith("A10")
    assert by_id[kept]["Lease left"] > 0 and by_id[kept]["Hard limit left"] > by_id[kept]["Lease left"]
    assert by_id[ended]["Status"] == "ended (user)" and by_id[ended]["Cost (USD)"] is not None
    assert all("\033[" not in json.dumps(row) for row in rows)


def test_status_without_the_provider_shows_the_ledger(run_soong, soong_env, emu):
    kept = launch(run_soong)
    emu.add_fault(path="/instances", action="error", status=503)
    result = run_soong("status", "-f", "json")
    assert result.returncode == 0, result.stderr
    assert "could not list instances" in result.stderr
    [row] = json.loads(result.stdout)
    assert row["Instance ID"] == kept and row["Status"].startswith("unknown")


def test_status_of_an_unknown_instance_is_not_found(run_soong, soong_env, emu):
    result = run_soong("status", "--instance-id", "0" * 32)
    assert result.returncode == 8, result.stderr


def test_status_asks_the_provider_once_and_reuses_instance_types_briefly(run_soong, soong_env, emu):
    launch(run_soong)
    emu.clear_requests()
    assert run_soong("status").returncode == 0
    assert run_soong("status").returncode == 0
    paths = [e["path"].split("/api/v1")[-1] for e in emu.requests()]
    assert paths.count("/instances") == 2 and paths.count("/instance-types") == 1
    emu.clear_requests()
    assert run_soong("status", env={"SOONG_STATUS_INSTANCE_TYPES_CACHE_SECONDS": "0"}).returncode == 0
    assert [e["path"].split("/api/v1")[-1] for e in emu.requests()].count("/instance-types") == 1
