"""Budgets: may a planned launch go ahead?

Two optional caps from the config:

* ``budget.max_hourly_usd``: the instance's hourly price must not pass it.
* ``budget.monthly_usd``: the launch's worst case (price times hours to its hard
  limit) plus what this month has already cost plus what the instances still
  open may yet cost (each to its own hard limit) must not pass it. The whole
  worst case counts against the current month even if it would run into the
  next: the check errs on the side of the bill.

:func:`evaluate_launch` is the pure arithmetic; :func:`check_launch` reads the
ledger and the config and raises :class:`~soong.core.errors.BudgetError` unless
the caller passes ``over_budget=True`` (``soong start --over-budget``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from typing import Any

from soong.core.errors import BudgetError

#: Amounts within this many dollars of a cap count as at the cap (float noise).
EPSILON = 1e-9


@dataclasses.dataclass(frozen=True)
class LaunchCheck:
    """The numbers behind a budget decision and the problems found (none: allowed)."""

    hourly_usd: float
    hard_limit_hours: float
    worst_case_usd: float
    month_spent_usd: float
    month_committed_usd: float
    monthly_budget_usd: float | None
    max_hourly_usd: float | None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no cap would be passed."""
        return not self.problems

    @property
    def remaining_usd(self) -> float | None:
        """Budget left this month before this launch (None without a monthly budget)."""
        if self.monthly_budget_usd is None:
            return None
        return self.monthly_budget_usd - self.month_spent_usd - self.month_committed_usd


def evaluate_launch(*, price_cents_per_hour: int, hard_limit_hours: float, month_spent_usd: float,
                    month_committed_usd: float = 0.0, monthly_usd: float | None = None,
                    max_hourly_usd: float | None = None) -> LaunchCheck:
    """Check a launch against the caps (pure arithmetic; see the module docstring)."""
    if price_cents_per_hour < 0 or hard_limit_hours <= 0:
        raise ValueError("price must not be negative and the hard limit must be positive")
    hourly = price_cents_per_hour / 100.0
    worst = hourly * hard_limit_hours
    problems = []
    if max_hourly_usd is not None and hourly > max_hourly_usd + EPSILON:
        problems.append(f"${hourly:.2f}/h is above budget.max_hourly_usd (${max_hourly_usd:.2f}/h)")
    if monthly_usd is not None:
        after = month_spent_usd + month_committed_usd + worst
        if after > monthly_usd + EPSILON:
            left = monthly_usd - month_spent_usd - month_committed_usd
            problems.append(
                f"the worst case ${worst:.2f} ({hard_limit_hours:g} h to the hard limit) passes what is left of "
                f"budget.monthly_usd: ${max(left, 0.0):.2f} of ${monthly_usd:.2f} (spent ${month_spent_usd:.2f}, "
                f"open instances may still cost ${month_committed_usd:.2f})"
            )
    return LaunchCheck(hourly, hard_limit_hours, worst, month_spent_usd, month_committed_usd, monthly_usd,
                       max_hourly_usd, tuple(problems))


def check_launch(ledger: Any, config: Any, *, price_cents_per_hour: int, hard_limit_hours: float, now: _dt.datetime,
                 over_budget: bool = False) -> LaunchCheck:
    """Check a planned launch against ``config``'s budgets and this month in ``ledger``.

    Raises :class:`BudgetError` listing every cap passed, unless ``over_budget``.
    """
    from soong.core.spend import month_start, month_summary

    summary = month_summary(ledger.records(since=month_start(now)), now)
    check = evaluate_launch(price_cents_per_hour=price_cents_per_hour, hard_limit_hours=hard_limit_hours,
                            month_spent_usd=summary.spent_usd, month_committed_usd=summary.committed_usd,
                            monthly_usd=config.get("budget.monthly_usd"), max_hourly_usd=config.get("budget.max_hourly_usd"))
    if check.problems and not over_budget:
        raise BudgetError("; ".join(check.problems), hint="rerun with --over-budget to launch anyway")
    return check


@dataclasses.dataclass(frozen=True)
class BudgetStatus:
    """What ``soong status`` and ``soong cost`` show about the monthly budget."""

    monthly_budget_usd: float | None
    spent_usd: float
    committed_usd: float
    projected_usd: float

    @property
    def left_usd(self) -> float | None:
        """Budget left after what is spent and what open instances may still cost."""
        if self.monthly_budget_usd is None:
            return None
        return self.monthly_budget_usd - self.spent_usd - self.committed_usd

    def describe(self) -> str:
        """One line for humans."""
        text = f"this month: ${self.spent_usd:.2f} spent, ${self.committed_usd:.2f} more if open instances run to their hard limits"
        if self.monthly_budget_usd is None:
            return text + "; no monthly budget set"
        return text + f"; ${self.left_usd:.2f} of ${self.monthly_budget_usd:.2f} budget left"


def budget_status(ledger: Any, config: Any, now: _dt.datetime) -> BudgetStatus:
    """The budget left this month (for ``soong status``)."""
    from soong.core.spend import month_start, month_summary

    summary = month_summary(ledger.records(since=month_start(now)), now)
    return BudgetStatus(config.get("budget.monthly_usd"), summary.spent_usd, summary.committed_usd, summary.projected_usd)
