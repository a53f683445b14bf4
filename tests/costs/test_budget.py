"""Budgets: the arithmetic (checked against exact fractions) and the check start will call."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soong.core.budget import budget_status, check_launch, evaluate_launch
from soong.core.config import Config
from soong.core.errors import EXIT_BUDGET, BudgetError
from tests.costs.conftest import T0, launch

cents = st.integers(min_value=0, max_value=2_000_000)
prices = st.integers(min_value=0, max_value=10_000)
quarter_hours = st.integers(min_value=1, max_value=32)  # 0.25 .. 8 h


@given(prices, quarter_hours, cents, cents, st.one_of(st.none(), cents), st.one_of(st.none(), prices))
def test_matches_exact_arithmetic(price, quarters, spent, committed, monthly, max_hourly):
    hours = quarters / 4
    check = evaluate_launch(price_cents_per_hour=price, hard_limit_hours=hours, month_spent_usd=spent / 100,
                            month_committed_usd=committed / 100,
                            monthly_usd=None if monthly is None else monthly / 100,
                            max_hourly_usd=None if max_hourly is None else max_hourly / 100)
    worst = Fraction(price * quarters, 400)  # dollars, exactly
    over_month = monthly is not None and Fraction(spent + committed, 100) + worst > Fraction(monthly, 100)
    over_hourly = max_hourly is not None and price > max_hourly
    assert check.ok == (not over_month and not over_hourly)
    assert len(check.problems) == int(over_month) + int(over_hourly)
    assert check.worst_case_usd == pytest.approx(float(worst))
    if monthly is not None:
        assert check.remaining_usd == pytest.approx((monthly - spent - committed) / 100)


@given(prices, prices, quarter_hours, cents, cents)
def test_a_cheaper_launch_is_never_refused_when_a_dearer_one_is_allowed(p1, p2, quarters, spent, monthly):
    cheap, dear = sorted((p1, p2))
    args = dict(hard_limit_hours=quarters / 4, month_spent_usd=spent / 100, monthly_usd=monthly / 100, max_hourly_usd=monthly / 1000)
    if evaluate_launch(price_cents_per_hour=dear, **args).ok:
        assert evaluate_launch(price_cents_per_hour=cheap, **args).ok


def config(**values):
    return Config({f"budget.{k}": v for k, v in values.items()}, env={})


def test_check_launch_counts_this_month_and_open_instances(ledger):
    # last month: 10 h at $5 -> does not count; this month: 2 h at $5 ended; one open at $1/h, 8 h hard limit
    last_month = T0.replace(day=1) - dt.timedelta(days=3)
    launch(ledger, "old", last_month, instance_id="i-old", price=500)
    ledger.record_termination("i-old", reason="user", at=last_month + dt.timedelta(hours=10))
    launch(ledger, "done", T0 - dt.timedelta(hours=5), instance_id="i-done", price=500)
    ledger.record_termination("i-done", reason="user", at=T0 - dt.timedelta(hours=3))
    launch(ledger, "open", T0 - dt.timedelta(hours=1), instance_id="i-open", price=100, hard=8)
    # spent: $10 + $1 = $11; committed: 7 h x $1 = $7; new launch: 8 h x $2 = $16 -> $34 worst case
    ok = check_launch(ledger, config(monthly_usd=34.0), price_cents_per_hour=200, hard_limit_hours=8, now=T0)
    assert ok.month_spent_usd == pytest.approx(11) and ok.month_committed_usd == pytest.approx(7) and ok.ok
    with pytest.raises(BudgetError) as info:
        check_launch(ledger, config(monthly_usd=33.99), price_cents_per_hour=200, hard_limit_hours=8, now=T0)
    assert info.value.exit_code == EXIT_BUDGET and "--over-budget" in str(info.value) and "\n" not in str(info.value)
    forced = check_launch(ledger, config(monthly_usd=1.0, max_hourly_usd=1.0), price_cents_per_hour=200,
                          hard_limit_hours=8, now=T0, over_budget=True)
    assert len(forced.problems) == 2


def test_hourly_cap(ledger):
    with pytest.raises(BudgetError, match="max_hourly_usd"):
        check_launch(ledger, config(max_hourly_usd=1.5), price_cents_per_hour=151, hard_limit_hours=1, now=T0)
    assert check_launch(ledger, config(max_hourly_usd=1.5), price_cents_per_hour=150, hard_limit_hours=1, now=T0).ok


def test_budget_status_for_status_command(ledger):
    launch(ledger, "open", T0 - dt.timedelta(hours=2), instance_id="i-open", price=100, hard=8)
    status = budget_status(ledger, config(monthly_usd=100.0), T0)
    assert status.spent_usd == pytest.approx(2) and status.committed_usd == pytest.approx(6)
    assert status.left_usd == pytest.approx(92) and "$92.00 of $100.00" in status.describe()
    assert budget_status(ledger, config(), T0).left_usd is None
