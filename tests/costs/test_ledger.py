"""The ledger as the lifecycle uses it: intent, launch, extension, termination, queries."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import stat

import pytest

from soong.core.errors import NotFoundError
from soong.core.ledger import LEDGER_FILE, Ledger, LedgerError
from tests.costs.conftest import T0, launch


def test_lives_in_the_data_dir_private_and_in_wal_mode(context, ledger):
    launch(ledger, "a", T0)
    path = context.paths.data_dir / LEDGER_FILE
    assert ledger.path == path and path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_intent_then_launch_then_termination(ledger):
    record = launch(ledger, "soong-1", T0, price=250, lease=4, hard=8)
    assert record.state == "intent" and record.instance_id is None and record.is_open
    assert record.lease_ends_at - record.intent_at == dt.timedelta(hours=4)
    assert record.hard_limit_at - record.intent_at == dt.timedelta(hours=8)
    launched = ledger.record_launched("soong-1", "i-1", at=T0 + dt.timedelta(seconds=5))
    assert launched.state == "running" and launched.instance_id == "i-1"
    assert ledger.record_termination("i-1", reason="user", at=T0 + dt.timedelta(hours=2)) is True
    ended = ledger.require("i-1")
    assert (ended.state, ended.end_reason, ended.is_open) == ("ended", "user", False)
    assert ended.final_cost_usd == pytest.approx(5.0)  # 2 h at $2.50
    assert ended.cost_usd(T0 + dt.timedelta(days=3)) == pytest.approx(5.0)  # does not grow once ended


def test_termination_is_idempotent(ledger):
    launch(ledger, "n", T0, instance_id="i-1")
    assert ledger.record_termination("i-1", reason="watchdog", at=T0 + dt.timedelta(hours=1)) is True
    assert ledger.record_termination("i-1", reason="user", at=T0 + dt.timedelta(hours=3)) is False
    record = ledger.require("i-1")
    assert record.end_reason == "watchdog" and record.ended_at == T0 + dt.timedelta(hours=1)


def test_launch_names_are_unique(ledger):
    launch(ledger, "same", T0)
    with pytest.raises(LedgerError, match="unique"):
        launch(ledger, "same", T0)


def test_record_launched_is_idempotent_and_refuses_conflicts(ledger):
    launch(ledger, "a", T0, instance_id="i-1")
    assert ledger.record_launched("a", "i-1", at=T0).instance_id == "i-1"
    with pytest.raises(LedgerError, match="already has instance"):
        ledger.record_launched("a", "i-2", at=T0)
    launch(ledger, "b", T0)
    with pytest.raises(LedgerError, match="already belongs"):
        ledger.record_launched("b", "i-1", at=T0)
    with pytest.raises(LedgerError, match="no launch named"):
        ledger.record_launched("nope", "i-9", at=T0)


def test_failed_launch_costs_nothing_and_only_an_intent_can_fail(ledger):
    launch(ledger, "f", T0)
    assert ledger.record_launch_failed("f", at=T0, reason="no capacity") is True
    record = ledger.get_by_name("f")
    assert record.state == "failed" and record.cost_usd(T0 + dt.timedelta(hours=5)) == 0
    launch(ledger, "r", T0, instance_id="i-2")
    assert ledger.record_launch_failed("r", at=T0, reason="x") is False
    assert ledger.require("i-2").state == "running"


def test_lease_never_passes_the_hard_limit(ledger):
    record = launch(ledger, "a", T0, instance_id="i-1", lease=8, hard=6)
    assert record.lease_ends_at == record.hard_limit_at
    extended = ledger.record_extension("i-1", lease_ends_at=T0 + dt.timedelta(hours=20), at=T0, hours=12)
    assert extended.lease_ends_at == extended.hard_limit_at
    assert [hours for _, hours, _ in ledger.extensions("i-1")] == [12]


def test_extension_of_an_ended_instance_is_refused(ledger):
    launch(ledger, "a", T0, instance_id="i-1")
    ledger.record_termination("i-1", reason="user", at=T0 + dt.timedelta(hours=1))
    with pytest.raises(LedgerError, match="already ended"):
        ledger.record_extension("i-1", lease_ends_at=T0 + dt.timedelta(hours=5), at=T0)


def test_first_seen_gone_keeps_the_first_time_and_seen_clears_it(ledger):
    launch(ledger, "a", T0, instance_id="i-1")
    first = ledger.mark_gone("i-1", at=T0 + dt.timedelta(minutes=10)).first_seen_gone_at
    assert ledger.mark_gone("i-1", at=T0 + dt.timedelta(minutes=20)).first_seen_gone_at == first
    ledger.mark_seen("i-1", at=T0 + dt.timedelta(minutes=30))
    assert ledger.require("i-1").first_seen_gone_at is None


def test_note_ending_keeps_the_first_reason(ledger):
    launch(ledger, "a", T0, instance_id="i-1")
    assert ledger.note_ending("i-1", reason="hard_limit", at=T0) is True
    assert ledger.note_ending("i-1", reason="user", at=T0) is False
    assert ledger.require("i-1").end_requested_reason == "hard_limit"


def test_unknown_reason_and_unknown_instance(ledger):
    launch(ledger, "a", T0, instance_id="i-1")
    with pytest.raises(LedgerError, match="unknown termination reason"):
        ledger.record_termination("i-1", reason="bored", at=T0)
    with pytest.raises(NotFoundError):
        ledger.record_termination("i-404", reason="user", at=T0)
    assert ledger.get("i-404") is None


def test_naive_times_and_bad_prices_are_refused(ledger):
    with pytest.raises(ValueError):
        launch(ledger, "a", T0.replace(tzinfo=None))
    with pytest.raises(LedgerError, match="price"):
        launch(ledger, "b", T0, price=-1)


def test_adopt_tracks_from_now_once(ledger):
    record = ledger.adopt("i-x", instance_type="gpu_1x_h100", region="us-west-1", price_cents_per_hour=300, at=T0,
                          lease_hours=2, hard_limit_hours=8, name="theirs")
    assert record.adopted and record.state == "running" and record.intent_at == T0
    with pytest.raises(LedgerError, match="already"):
        ledger.adopt("i-x", instance_type="gpu_1x_h100", region="us-west-1", price_cents_per_hour=300, at=T0,
                     lease_hours=2, hard_limit_hours=8)


def test_queries_by_window_and_state(ledger):
    launch(ledger, "old", T0 - dt.timedelta(days=20), instance_id="i-old")
    ledger.record_termination("i-old", reason="user", at=T0 - dt.timedelta(days=20) + dt.timedelta(hours=1))
    launch(ledger, "new", T0, instance_id="i-new")
    launch(ledger, "pending", T0)
    assert [r.launch_name for r in ledger.open_records()] == ["new", "pending"]
    assert [r.launch_name for r in ledger.records(since=T0 - dt.timedelta(days=7))] == ["new", "pending"]
    assert [r.launch_name for r in ledger.records()] == ["old", "new", "pending"]
    assert [r.launch_name for r in ledger.records(instance_id="i-old")] == ["old"]


def test_cost_is_prorated_inside_a_window(ledger):
    launch(ledger, "a", T0, instance_id="i-1", price=100)
    ledger.record_termination("i-1", reason="user", at=T0 + dt.timedelta(hours=4))
    record = ledger.require("i-1")
    now = T0 + dt.timedelta(days=1)
    assert record.cost_between(T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2), now) == pytest.approx(1.0)
    assert record.cost_between(T0 - dt.timedelta(hours=5), T0, now) == 0


def test_events_are_stored_once_per_event_id(ledger):
    from soong.testing.cost_sink_contract import sample_event

    event = sample_event("launched", 1)
    assert ledger.add_event(event) is True
    assert ledger.add_event(event) is False
    assert [e.data["event_id"] for e in ledger.events(instance_id=event.instance_id)] == [event.data["event_id"]]


def test_a_file_that_is_not_a_database_is_one_readable_error(context):
    path = context.paths.data_dir / LEDGER_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not sqlite at all, not even close" * 100)
    with pytest.raises(LedgerError) as info:
        Ledger(path).open_records()
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_newer_schema_is_refused(context):
    path = context.paths.data_dir / LEDGER_FILE
    Ledger(path).open_records()
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version = 99")
    with pytest.raises(LedgerError, match="newer soong"):
        Ledger(path).open_records()


def test_survives_a_fork(ledger):
    launch(ledger, "parent", T0, instance_id="i-p")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            launch(ledger, "child", T0, instance_id="i-c")
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert {r.launch_name for r in ledger.records()} == {"parent", "child"}
