"""Spend arithmetic: amounts over adjacent windows add up, groupings add up to the total."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soong.core.spend import GROUPINGS, days_between, group_spend, month_start, month_summary, next_month_start, spend_between
from tests.costs.strategies import BASE, moments, records

NOW = BASE + dt.timedelta(days=125)


@given(st.lists(records(), max_size=8), moments, moments, moments)
def test_adjacent_windows_add_up(recs, a, b, c):
    a, b, c = sorted((a, b, c))
    whole = spend_between(recs, a, c, NOW)
    assert spend_between(recs, a, b, NOW) + spend_between(recs, b, c, NOW) == pytest.approx(whole, abs=1e-6)


@settings(max_examples=60)
@given(st.lists(records(), max_size=6), moments, st.integers(min_value=1, max_value=60 * 24 * 20), st.sampled_from(GROUPINGS))
def test_groups_add_up_to_the_total(recs, start, length, by):
    end = start + dt.timedelta(minutes=length)
    groups = group_spend(recs, start, end, NOW, by=by)
    assert sum(g.cost_usd for g in groups) == pytest.approx(spend_between(recs, start, end, NOW), abs=1e-6)
    assert all(g.hours > 0 and g.instances > 0 for g in groups)


@given(st.lists(records(), max_size=8))
def test_a_window_never_costs_more_than_the_whole(recs):
    for record in recs:
        assert record.cost_between(BASE, NOW, NOW) == pytest.approx(record.cost_usd(NOW), abs=1e-6)
        assert 0 <= record.cost_between(BASE + dt.timedelta(days=30), BASE + dt.timedelta(days=31), NOW) <= record.cost_usd(NOW) + 1e-9


@given(moments, st.integers(min_value=1, max_value=60 * 24 * 10))
def test_days_cover_the_window_without_gaps(start, length):
    end = start + dt.timedelta(minutes=length)
    days = days_between(start, end)
    assert days[0][0] == start and days[-1][1] == end
    assert all(a[1] == b[0] for a, b in zip(days, days[1:], strict=False))
    assert all(lo.date() == (hi - dt.timedelta(microseconds=1)).date() for lo, hi in days)


@given(moments)
def test_month_bounds(moment):
    start, end = month_start(moment), next_month_start(moment)
    assert start <= moment < end and start.day == 1 and end.day == 1 and 28 <= (end - start).days <= 31


@given(st.lists(records(), max_size=8), moments)
def test_month_summary_is_consistent(recs, now):
    summary = month_summary(recs, now)
    assert summary.projected_usd >= summary.spent_usd - 1e-9
    assert summary.committed_usd >= 0
    if not any(r.is_open for r in recs):
        assert summary.committed_usd == 0
