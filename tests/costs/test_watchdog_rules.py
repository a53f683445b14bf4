"""The watchdog's rules as properties over any lease, hard limit, time and daemon state."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from soong.core.ledger import LedgerRecord
from soong.core.watchdog import decide

BASE = dt.datetime(2024, 5, 15, tzinfo=dt.timezone.utc)
mins = st.integers(min_value=0, max_value=24 * 60)


@st.composite
def situations(draw):
    lease = draw(st.integers(min_value=15, max_value=8 * 60))
    hard = draw(st.integers(min_value=lease, max_value=8 * 60))
    since = draw(st.one_of(st.none(), mins))
    requested = draw(st.one_of(st.none(), st.sampled_from(["user", "hard_limit", "watchdog"])))
    record = LedgerRecord(
        launch_name="n", instance_id="i", provider="lambda", instance_type="t", gpu=None, region="r",
        price_cents_per_hour=100, model=None, state="running", intent_at=BASE, launched_at=BASE,
        lease_ends_at=BASE + dt.timedelta(minutes=lease), hard_limit_at=BASE + dt.timedelta(minutes=hard),
        daemon_unreachable_since=None if since is None else BASE + dt.timedelta(minutes=since),
        end_requested_at=BASE if requested else None, end_requested_reason=requested,
    )
    now = BASE + dt.timedelta(minutes=draw(mins))
    return record, now, draw(st.booleans()), dt.timedelta(minutes=draw(st.integers(min_value=1, max_value=120)))


def run(record, now, alive, unreachable):
    calls = []
    decision = decide(record, now, unreachable=unreachable, probe=lambda: calls.append(1) or alive)
    return decision, len(calls)


@given(situations())
def test_the_hard_limit_always_ends_it(case):
    record, now, alive, unreachable = case
    decision, _ = run(*case)
    if now >= record.hard_limit_at:
        assert decision.terminate and decision.reason == "hard_limit"


@given(situations())
def test_nothing_ends_within_the_lease_unless_asked(case):
    record, now, alive, unreachable = case
    decision, probes = run(*case)
    if now < record.lease_ends_at and now < record.hard_limit_at and record.end_requested_at is None:
        assert not decision.terminate and probes == 0


@given(situations())
def test_a_daemon_that_answers_keeps_it_until_the_hard_limit(case):
    record, now, alive, unreachable = case
    decision, _ = run(*case)
    if alive and now < record.hard_limit_at and record.end_requested_at is None:
        assert not decision.terminate and decision.unreachable_since is None


@given(situations())
def test_unreachable_ends_it_only_after_the_configured_time(case):
    record, now, alive, unreachable = case
    decision, probes = run(*case)
    if decision.terminate and decision.reason == "watchdog" and record.end_requested_at is None:
        assert not alive and probes == 1 and now >= record.lease_ends_at
        assert record.daemon_unreachable_since is not None and now - record.daemon_unreachable_since >= unreachable


@given(situations())
def test_a_first_failed_probe_starts_the_count_and_never_terminates(case):
    record, now, alive, unreachable = case
    record = record.__class__(**{**record.__dict__, "daemon_unreachable_since": None, "end_requested_at": None,
                                 "end_requested_reason": None})
    decision, _ = run(record, now, alive, unreachable)
    if now < record.hard_limit_at:
        assert not decision.terminate
        if not alive and now >= record.lease_ends_at:
            assert decision.unreachable_since == now and decision.note == "daemon-unreachable"


@given(situations())
def test_a_requested_termination_is_always_retried(case):
    record, now, alive, unreachable = case
    decision, _ = run(*case)
    if record.end_requested_at is not None:
        assert decision.terminate
