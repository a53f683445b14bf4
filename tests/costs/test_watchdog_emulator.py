"""The watchdog against the Lambda API emulator (gunicorn, real HTTP on loopback).

Ledger times follow soong's clock (a fake one in-process, the real one for
subprocesses); instance states follow the emulator's own clock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess

import pytest

import soong.plugins.lambda_cloud
from soong.core.context import Context
from soong.core.ledger import Ledger
from soong.core.types import LaunchRequest
from soong.core.watchdog import Watchdog, recent_actions
from soong.plugins.lambda_cloud.provider import instance_name, new_token
from soong.testing.emulator import run_emulator
from soong.testing.net import free_port
from tests.conftest import VENV_BIN
from tests.costs.conftest import FakeClock, builtin_sink_host
from tests.costs.health_server import health_server
from tests.costs.relay_backend import RelayPlugin

FAST = {
    "SOONG_LAMBDA_REQUEST_INTERVAL_SECONDS": "0",
    "SOONG_LAMBDA_LAUNCH_INTERVAL_SECONDS": "0",
    "SOONG_LAMBDA_RETRY_BASE_SECONDS": "0.01",
    "SOONG_LAMBDA_RETRY_BUDGET_SECONDS": "0.5",
    "SOONG_LAMBDA_LAUNCH_LOOKUP_SECONDS": "0",
}


@pytest.fixture(scope="module")
def emulator():
    with run_emulator("--rate-limit", "off", "--launch-rate-limit", "off", "--boot-delay", "0",
                      "--terminate-delay", "0", "--gone-delay", "0") as handle:
        yield handle


@pytest.fixture
def emu(emulator, monkeypatch):
    """The emulator reset, with an SSH key, and this process's environment pointing at it."""
    emulator.reset()
    emulator.freeze(False)
    emulator.configure(boot_delay=0, terminate_delay=0, gone_delay=0)
    emulator.add_ssh_key("me")
    for key, value in {**FAST, "SOONG_LAMBDA_API_URL": emulator.url, "LAMBDA_API_KEY": emulator.api_key}.items():
        monkeypatch.setenv(key, value)
    return emulator


def make_context(clock=None, **env) -> Context:
    return Context(env={**os.environ, **env}, clock=clock or (lambda: dt.datetime.now(dt.timezone.utc)),
                   plugin_host=builtin_sink_host(soong.plugins.lambda_cloud, RelayPlugin()))


def start(context, ledger, at, *, lease=4.0, hard=8.0, track=True, record_id=True):
    """Launch one instance the way ``soong start`` does: intent first, then the API call, then the id."""
    token = new_token()
    name = instance_name("soong-test", token)
    if track:
        ledger.record_intent(name, instance_type="gpu_1x_a10", region="us-east-1", price_cents_per_hour=75,
                             lease_hours=lease, hard_limit_hours=hard, at=at, model="llama-3.1-8b")
    inst = context.provider("lambda").launch(LaunchRequest(instance_type="gpu_1x_a10", region="us-east-1",
                                                           ssh_key_name="me", name="soong-test", token=token))
    if track and record_id:
        ledger.record_launched(name, inst.id, at=at)
    return inst


def live_status(emu, instance_id):
    resp = emu.api("GET", f"/instances/{instance_id}")
    return resp.json()["data"]["status"] if resp.status_code == 200 else "gone"


def terminate_calls(emu):
    return [e for e in emu.requests() if e["path"] == "/instance-operations/terminate"]


def watchdog_cli(*args, timeout=90):
    return subprocess.Popen([str(VENV_BIN / "soong"), "watchdog", "run", "--once", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))


# -- the acceptance cases ------------------------------------------------------------------------


def test_past_hard_limit_with_a_dead_daemon_is_terminated_by_one_run(emu):
    context = make_context()
    ledger = Ledger.for_context(context)
    inst = start(context, ledger, dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=9), hard=8)
    proc = watchdog_cli()
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert f"terminated {inst.id} (hard_limit)" in out
    assert live_status(emu, inst.id) == "gone" and len(terminate_calls(emu)) == 1
    record = ledger.require(inst.id)
    assert (record.state, record.end_reason) == ("ended", "hard_limit")
    assert record.final_cost_usd == pytest.approx(9 * 0.75, rel=0.01)
    events = ledger.events(instance_id=inst.id, kind="terminated")
    assert len(events) == 1 and events[0].data["by"] == "watchdog"
    jsonl = (context.paths.data_dir / "cost-events.jsonl").read_text()
    assert events[0].data["event_id"] in jsonl  # every sink got it
    assert [a["action"] for a in recent_actions(context.paths.state_dir / "watchdog")] == ["terminated"]
    status = subprocess.run([str(VENV_BIN / "soong"), "watchdog", "status", "-f", "json"], capture_output=True, text=True)
    shown = json.loads(status.stdout)
    assert "1 action(s)" in shown["Last result"] and f"terminated {inst.id} (hard_limit)" in shown["Recent actions"]


def test_within_its_lease_is_left_alone(emu):
    clock = FakeClock(dt.datetime.now(dt.timezone.utc))
    context = make_context(clock)
    ledger = Ledger.for_context(context)
    inst = start(context, ledger, clock.now - dt.timedelta(hours=1), lease=4)
    probed = []
    report = Watchdog(context, probe=lambda r, i: probed.append(i.id) or False).run_once()
    assert report.checked == 1 and report.actions == [] and not report.errors
    assert probed == []  # within the lease the daemon is not even asked
    assert live_status(emu, inst.id) == "active" and ledger.require(inst.id).is_open
    assert terminate_calls(emu) == []
    [accrued] = ledger.events(instance_id=inst.id, kind="accrued")  # a cost-so-far snapshot per pass
    assert accrued.cost_usd == pytest.approx(0.75, rel=0.05)


def test_untracked_instances_are_left_alone(emu):
    context = make_context()
    ledger = Ledger.for_context(context)
    inst = start(context, ledger, dt.datetime.now(dt.timezone.utc), track=False)
    proc = watchdog_cli()
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert "left alone 1 untracked" in out and inst.id in out
    assert live_status(emu, inst.id) == "active" and ledger.get(inst.id) is None and terminate_calls(emu) == []


def test_two_runs_at_once_terminate_once(emu):
    context = make_context()
    ledger = Ledger.for_context(context)
    inst = start(context, ledger, dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=9), hard=8)
    procs = [watchdog_cli() for _ in range(3)]
    results = [p.communicate(timeout=90) for p in procs]
    for proc, (_out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    assert sum(out.count(f"terminated {inst.id}") for out, _ in results) == 1
    assert len(terminate_calls(emu)) == 1
    assert len(ledger.events(instance_id=inst.id, kind="terminated")) == 1
    assert live_status(emu, inst.id) == "gone"


# -- the rules in detail (in-process, fake clock) ----------------------------------------------------


def test_lease_over_and_daemon_dead_for_the_configured_time(emu):
    clock = FakeClock(dt.datetime.now(dt.timezone.utc))
    context = make_context(clock, SOONG_WATCHDOG_UNREACHABLE_MINUTES="15")
    ledger = Ledger.for_context(context)
    inst = start(context, ledger, clock.now - dt.timedelta(hours=4, minutes=1), lease=4, hard=8)
    watchdog = Watchdog(context, probe=lambda r, i: False)
    first = watchdog.run_once()
    assert [a.action for a in first.actions] == ["daemon-unreachable"] and live_status(emu, inst.id) == "active"
    clock.advance(minutes=10)
    assert watchdog.run_once().actions == [] and live_status(emu, inst.id) == "active"
    clock.advance(minutes=6)
    last = watchdog.run_once()
    assert [(a.action, a.reason) for a in last.actions] == [("terminated", "watchdog")]
    assert ledger.require(inst.id).end_reason == "watchdog" and live_status(emu, inst.id) == "gone"


def test_a_daemon_that_answers_keeps_its_instance(emu):
    """The default probe, through a tunnel backend, to a real HTTP server on the instance's (loopback) address."""
    port = free_port()
    clock = FakeClock(dt.datetime.now(dt.timezone.utc))
    context = make_context(clock, SOONG_TUNNEL_BACKEND="relay", SOONG_STATUS_DAEMON_PORT=str(port),
                           SOONG_WATCHDOG_UNREACHABLE_MINUTES="5")
    ledger = Ledger.for_context(context)
    inst = start(context, ledger, clock.now - dt.timedelta(hours=5), lease=4, hard=8)
    ip = context.provider("lambda").get_instance(inst.id).ip
    watchdog = Watchdog(context)
    with health_server(host=ip, port=port):
        assert watchdog.run_once().actions == []
    assert [a.action for a in watchdog.run_once().actions] == ["daemon-unreachable"]  # the daemon went away
    with health_server(host=ip, port=port):
        clock.advance(minutes=3)
        assert [a.action for a in watchdog.run_once().actions] == ["daemon-reachable"]
    assert ledger.require(inst.id).daemon_unreachable_since is None
    clock.advance(minutes=6)
    assert [a.action for a in watchdog.run_once().actions] == ["daemon-unreachable"]  # the clock starts again
    assert live_status(emu, inst.id) == "active"


def test_a_failed_terminate_is_never_taken_for_success(emu):
    clock = FakeClock(dt.datetime.now(dt.timezone.utc))
    context = make_context(clock)
    ledger = Ledger.for_context(context)
    inst = start(context, ledger, clock.now - dt.timedelta(hours=9), hard=8)
    emu.add_fault(method="POST", path="/instance-operations/terminate", action="error", status=500)
    report = Watchdog(context, probe=lambda r, i: False).run_once()
    assert [a.action for a in report.actions] == ["terminate-failed"] and report.errors
    record = ledger.require(inst.id)
    assert record.is_open and record.end_requested_reason == "hard_limit"
    emu.clear_faults()
    again = Watchdog(context, probe=lambda r, i: False).run_once()
    assert [(a.action, a.reason) for a in again.actions] == [("terminated", "hard_limit")]
    assert not ledger.require(inst.id).is_open


def test_an_unconfirmed_terminate_is_closed_later_with_its_reason(emu):
    emu.freeze(True)
    emu.configure(terminate_delay=60, gone_delay=60)
    clock = FakeClock(dt.datetime.now(dt.timezone.utc))
    context = make_context(clock)
    ledger = Ledger.for_context(context)
    inst = start(context, ledger, clock.now - dt.timedelta(hours=9), hard=8)
    waits = []
    report = Watchdog(context, probe=lambda r, i: False, confirm_attempts=3, sleep=waits.append).run_once()
    assert [a.action for a in report.actions] == ["terminate-requested"] and report.unconfirmed == [inst.id]
    assert len(waits) == 2 and ledger.require(inst.id).is_open  # still billing as far as we know
    emu.advance(200)  # the provider finishes: terminated, then gone
    clock.advance(minutes=5)
    later = Watchdog(context, probe=lambda r, i: False).run_once()
    assert [(a.action, a.reason) for a in later.actions] == [("closed-gone", "hard_limit")]
    assert ledger.require(inst.id).end_reason == "hard_limit"
    assert len(ledger.events(instance_id=inst.id, kind="terminated")) == 1


def test_the_cli_exits_unconfirmed_when_a_terminate_fails(emu):
    context = make_context()
    ledger = Ledger.for_context(context)
    inst = start(context, ledger, dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=9), hard=8)
    emu.add_fault(method="POST", path="/instance-operations/terminate", action="error", status=500)
    proc = watchdog_cli()
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 11 and inst.id in err and "Traceback" not in err
    assert "terminate-failed" in out


def test_an_instance_ended_elsewhere_is_closed_as_external(emu):
    clock = FakeClock(dt.datetime.now(dt.timezone.utc))
    context = make_context(clock)
    ledger = Ledger.for_context(context)
    inst = start(context, ledger, clock.now - dt.timedelta(hours=1))
    assert emu.api("POST", "/instance-operations/terminate", {"instance_ids": [inst.id]}).status_code == 200
    report = Watchdog(context, probe=lambda r, i: False).run_once()
    assert [(a.action, a.reason) for a in report.actions] == [("closed-gone", "external")]
    record = ledger.require(inst.id)
    assert record.first_seen_gone_at == clock.now and record.ended_at == clock.now


def test_a_launch_whose_id_was_never_recorded_is_found_by_name_and_watched(emu):
    """kill -9 between the launch call and recording the id: the next pass matches the name and acts."""
    clock = FakeClock(dt.datetime.now(dt.timezone.utc))
    context = make_context(clock)
    ledger = Ledger.for_context(context)
    inst = start(context, ledger, clock.now - dt.timedelta(hours=9), hard=8, record_id=False)
    report = Watchdog(context, probe=lambda r, i: False).run_once()
    assert [a.action for a in report.actions] == ["attached", "terminated"]
    assert ledger.require(inst.id).end_reason == "hard_limit" and live_status(emu, inst.id) == "gone"


def test_include_untracked_adopts_and_then_applies_the_rules(emu):
    clock = FakeClock(dt.datetime.now(dt.timezone.utc))
    context = make_context(clock, SOONG_DEFAULTS_HARD_LIMIT_HOURS="2", SOONG_DEFAULTS_LEASE_HOURS="1")
    ledger = Ledger.for_context(context)
    inst = start(context, ledger, clock.now, track=False)
    watchdog = Watchdog(context, probe=lambda r, i: False, include_untracked=True)
    assert [a.action for a in watchdog.run_once().actions] == ["adopted"]
    record = ledger.require(inst.id)
    assert record.adopted and record.hard_limit_at == clock.now + dt.timedelta(hours=2)
    clock.advance(hours=2, minutes=1)
    assert [(a.action, a.reason) for a in watchdog.run_once().actions] == [("terminated", "hard_limit")]
    assert live_status(emu, inst.id) == "gone"


def test_a_provider_outage_is_reported_not_acted_on(emu):
    clock = FakeClock(dt.datetime.now(dt.timezone.utc))
    context = make_context(clock)
    ledger = Ledger.for_context(context)
    inst = start(context, ledger, clock.now - dt.timedelta(hours=9), hard=8)
    emu.add_fault(method="GET", path="/instances", action="error", status=503)
    report = Watchdog(context, probe=lambda r, i: False).run_once()
    assert report.actions == [] and "could not list instances" in report.errors[0]
    assert ledger.require(inst.id).is_open and terminate_calls(emu) == []


def test_history_reconciles_and_shows_untracked(emu, run_soong):
    context = make_context()
    ledger = Ledger.for_context(context)
    now = dt.datetime.now(dt.timezone.utc)
    gone = start(context, ledger, now - dt.timedelta(hours=2))
    other = start(context, ledger, now, track=False)
    emu.api("POST", "/instance-operations/terminate", {"instance_ids": [gone.id]})
    result = run_soong("history", "-f", "json")
    assert result.returncode == 0, result.stderr
    rows = {r["Instance ID"]: r for r in json.loads(result.stdout)}
    assert rows[gone.id]["State"] == "ended" and rows[gone.id]["Ended by"] == "external"
    assert rows[other.id]["State"] == "untracked" and "soong adopt" in result.stderr
    adopted = run_soong("adopt", other.id, "-y", "-f", "json")
    assert adopted.returncode == 0, adopted.stderr
    assert ledger.require(other.id).adopted
    again = run_soong("adopt", other.id, "-y")
    assert again.returncode == 1 and "already tracked" in again.stderr


def test_an_instance_the_ledger_closed_but_still_running_is_terminated_again(emu):
    clock = FakeClock(dt.datetime.now(dt.timezone.utc))
    context = make_context(clock)
    ledger = Ledger.for_context(context)
    inst = start(context, ledger, clock.now - dt.timedelta(hours=1))
    ledger.record_termination(inst.id, reason="user", at=clock.now)  # closed, yet the provider still runs it
    report = Watchdog(context, probe=lambda r, i: False).run_once()
    assert [(a.action, a.reason) for a in report.actions] == [("terminated", "user")]
    assert live_status(emu, inst.id) == "gone" and len(terminate_calls(emu)) == 1
    assert ledger.events(instance_id=inst.id, kind="terminated") == []  # the ledger entry was already final


def test_the_cli_exits_unavailable_when_the_provider_is_down(emu):
    emu.add_fault(method="GET", path="/instances", action="error", status=503)
    proc = watchdog_cli()
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 6 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("soong: error: watchdog: could not list instances")
    assert "checked 0 instance(s), 0 action(s), 1 error(s)" in out
