"""Spend arithmetic over ledger records: windows, days, groups, the month and its projection.

Every amount is price times hours of overlap with a window (a final cost, once
recorded, is prorated the same way), so amounts over adjacent windows add up to
the amount over their union. Days and months are UTC.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as _dt
from typing import Iterable, Sequence

from soong.core.ledger import LedgerRecord

UTC = _dt.timezone.utc
GROUPINGS = ("day", "gpu", "model", "instance")


def month_start(moment: _dt.datetime) -> _dt.datetime:
    """Midnight UTC on the first day of ``moment``'s month."""
    moment = moment.astimezone(UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(moment: _dt.datetime) -> _dt.datetime:
    """Midnight UTC on the first day of the month after ``moment``'s."""
    start = month_start(moment)
    days = calendar.monthrange(start.year, start.month)[1]
    return start + _dt.timedelta(days=days)


def day_start(moment: _dt.datetime) -> _dt.datetime:
    """Midnight UTC of ``moment``'s day."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def days_between(start: _dt.datetime, end: _dt.datetime) -> list[tuple[_dt.datetime, _dt.datetime]]:
    """The UTC days covering ``[start, end)`` as windows clipped to it."""
    windows = []
    cursor = start
    while cursor < end:
        boundary = day_start(cursor) + _dt.timedelta(days=1)
        windows.append((cursor, min(boundary, end)))
        cursor = boundary
    return windows


def overlap_hours(record: LedgerRecord, start: _dt.datetime, end: _dt.datetime, now: _dt.datetime) -> float:
    """Hours of ``record``'s run inside ``[start, end)`` (0 for a failed launch)."""
    if record.state == "failed":
        return 0.0
    lo, hi = max(start, record.started_at), min(end, record.end_or(now))
    return max((hi - lo).total_seconds(), 0.0) / 3600.0


def spend_between(records: Iterable[LedgerRecord], start: _dt.datetime, end: _dt.datetime, now: _dt.datetime) -> float:
    """Total spend of ``records`` inside ``[start, end)``."""
    return sum(r.cost_between(start, end, now) for r in records)


@dataclasses.dataclass
class Group:
    """One row of ``soong cost``: a day, GPU, model or instance, with what it cost."""

    key: str
    instances: int = 0
    hours: float = 0.0
    cost_usd: float = 0.0


def _key(record: LedgerRecord, by: str) -> str:
    if by == "gpu":
        return record.gpu or record.instance_type
    if by == "model":
        return record.model or "(unknown)"
    return record.instance_id or record.launch_name


def group_spend(records: Sequence[LedgerRecord], start: _dt.datetime, end: _dt.datetime, now: _dt.datetime,
                by: str = "day") -> list[Group]:
    """Spend inside ``[start, end)`` grouped ``by`` day, gpu, model or instance, sorted by key."""
    if by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}")
    groups: dict[str, Group] = {}
    for record in records:
        if by == "day":
            windows = [(s, e, s.date().isoformat()) for s, e in days_between(start, end)]
        else:
            windows = [(start, end, _key(record, by))]
        for lo, hi, key in windows:
            hours = overlap_hours(record, lo, hi, now)
            if hours <= 0:
                continue
            group = groups.setdefault(key, Group(key))
            group.instances += 1
            group.hours += hours
            group.cost_usd += record.cost_between(lo, hi, now)
    return [groups[k] for k in sorted(groups)]


@dataclasses.dataclass(frozen=True)
class MonthSummary:
    """The current month: spent so far, what open instances may still cost, and a projection."""

    month_start: _dt.datetime
    month_end: _dt.datetime
    spent_usd: float
    open_instances: int
    committed_usd: float  # what open instances may still cost, to their hard limits
    projected_usd: float  # spent so far extended at this month's average rate

    @property
    def worst_case_usd(self) -> float:
        """Spent plus committed: the month's total if every open instance runs to its hard limit."""
        return self.spent_usd + self.committed_usd


def committed_usd(records: Iterable[LedgerRecord], now: _dt.datetime) -> float:
    """What the open ``records`` may still cost from ``now`` to their hard limits."""
    return sum(max(r.worst_case_usd(now) - r.cost_usd(now), 0.0) for r in records if r.is_open)


def month_summary(records: Sequence[LedgerRecord], now: _dt.datetime) -> MonthSummary:
    """The month of ``now`` from ``records`` (pass every record that may overlap it)."""
    start, end = month_start(now), next_month_start(now)
    spent = spend_between(records, start, end, now)
    elapsed = max((now - start).total_seconds(), 1.0)
    projected = spent * (end - start).total_seconds() / elapsed
    open_records = [r for r in records if r.is_open]
    return MonthSummary(start, end, spent, len(open_records), committed_usd(open_records, now), max(projected, spent))
