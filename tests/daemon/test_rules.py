"""The pure shutdown rules, mostly as properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from soong_daemon import rules

T0 = 1_740_830_400.0
HOUR = 3600.0

times = st.floats(min_value=0, max_value=20 * HOUR, allow_nan=False)


@st.composite
def limits(draw):
    hard = T0 + draw(st.floats(min_value=0.1, max_value=12)) * HOUR
    lease = draw(st.floats(min_value=T0, max_value=hard))
    idle_timeout = draw(st.floats(min_value=60, max_value=4 * HOUR))
    idle_since = T0 + draw(times)
    return rules.Limits(hard_limit_at=hard, lease_end=lease, idle_timeout=idle_timeout, idle_since=idle_since)


@given(limits(), times)
def test_past_the_hard_limit_it_always_shuts_down_for_the_hard_limit(lim, offset):
    now = lim.hard_limit_at + offset
    verdict = rules.evaluate(now, lim)
    assert verdict.shutdown and verdict.reason == rules.HARD_LIMIT


@given(limits(), times)
def test_within_lease_and_recently_active_it_never_shuts_down(lim, offset):
    now = T0 + offset
    assume(now < lim.lease_end and now < lim.hard_limit_at and now - lim.idle_since < lim.idle_timeout)
    verdict = rules.evaluate(now, lim)
    assert not verdict.shutdown
    assert verdict.next_at >= now
    assert verdict.next_at == min(lim.hard_limit_at, lim.lease_end, lim.idle_since + lim.idle_timeout)


@given(limits(), times)
def test_a_shutdown_always_has_a_rule_behind_it(lim, offset):
    now = T0 + offset
    verdict = rules.evaluate(now, lim)
    if verdict.shutdown:
        assert (now >= lim.hard_limit_at or now >= lim.lease_end or now - lim.idle_since >= lim.idle_timeout)
        assert verdict.reason in rules.REASONS


@given(st.floats(min_value=T0, max_value=T0 + 8 * HOUR), st.floats(allow_nan=True, allow_infinity=True),
       st.floats(min_value=T0, max_value=T0 + 8 * HOUR))
def test_an_extension_never_passes_the_hard_limit(lease_end, hours, hard):
    assume(lease_end <= hard)
    try:
        parsed = rules.parse_hours(hours)
    except ValueError:
        assert not (math.isfinite(hours) and hours > 0)
        return
    try:
        new_end = rules.extended_lease_end(lease_end, parsed, hard)
    except rules.ExtensionRefused as refused:
        assert lease_end + parsed * HOUR > hard
        assert refused.max_hours == pytest.approx(max(0.0, (hard - lease_end) / HOUR))
        return
    assert new_end == lease_end + parsed * HOUR
    assert lease_end <= new_end <= hard


@pytest.mark.parametrize("value", [True, False, "1", None, [1], float("nan"), float("inf"), 0, -0.5])
def test_parse_hours_rejects(value):
    with pytest.raises(ValueError):
        rules.parse_hours(value)


def test_idle_since_takes_the_latest_moment():
    assert rules.idle_since(10, None, None) == 10
    assert rules.idle_since(10, 30, 20) == 30
    assert rules.idle_since(10, 15, 40) == 40


def test_warning_window():
    lim = rules.Limits(hard_limit_at=T0 + 8 * HOUR, lease_end=T0 + HOUR, idle_timeout=10 * HOUR, idle_since=T0)
    early = rules.evaluate(T0 + 0.5 * HOUR, lim)
    assert not rules.warning_due(T0 + 0.5 * HOUR, early, 600)
    late = rules.evaluate(T0 + HOUR - 300, lim)
    assert rules.warning_due(T0 + HOUR - 300, late, 600)
    assert not rules.warning_due(T0 + HOUR - 300, late, 0)


def test_limits_from_state_take_the_earlier_hard_limit():
    state = {"hard_limit_at": T0 + 8 * HOUR, "launched_at": T0, "lease_end": T0 + HOUR, "created_at": T0,
             "last_activity_at": None, "last_unknown_at": None}
    assert rules.limits_from_state(state, hard_limit_hours=4, idle_timeout_minutes=30).hard_limit_at == T0 + 4 * HOUR
    assert rules.limits_from_state(state, hard_limit_hours=24, idle_timeout_minutes=30).hard_limit_at == T0 + 8 * HOUR
