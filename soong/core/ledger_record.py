"""One instance as the ledger records it: :class:`LedgerRecord`, its cost arithmetic and time format.

Plain data with derived values only, so reports and tests can build records
without a database; :mod:`soong.core.ledger` reads and writes them.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt

#: Record states: ``intent`` (launch about to be sent), ``running`` (instance id known),
#: ``ended`` (terminated or gone) and ``failed`` (the launch surely created nothing).
STATES = ("intent", "running", "ended", "failed")
OPEN_STATES = ("intent", "running")
UTC = _dt.timezone.utc


def to_text(moment: _dt.datetime) -> str:
    """A timezone-aware datetime as the UTC text the ledger stores (sortable)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("ledger times must be timezone-aware")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "+00:00"


def from_text(text: str | None) -> _dt.datetime | None:
    """Inverse of :func:`to_text` (None stays None)."""
    return None if text is None else _dt.datetime.fromisoformat(text)


def hours_between(start: _dt.datetime, end: _dt.datetime) -> float:
    """Hours from ``start`` to ``end`` (0 if ``end`` is earlier)."""
    return max((end - start).total_seconds(), 0.0) / 3600.0


@dataclasses.dataclass(frozen=True)
class LedgerRecord:
    """One instance as the ledger knows it (``state`` is one of :data:`STATES`)."""

    launch_name: str
    instance_id: str | None
    provider: str
    instance_type: str
    gpu: str | None
    region: str
    price_cents_per_hour: int
    model: str | None
    state: str
    intent_at: _dt.datetime
    launched_at: _dt.datetime | None
    lease_ends_at: _dt.datetime
    hard_limit_at: _dt.datetime
    adopted: bool = False
    last_seen_at: _dt.datetime | None = None
    first_seen_gone_at: _dt.datetime | None = None
    daemon_unreachable_since: _dt.datetime | None = None
    end_requested_at: _dt.datetime | None = None
    end_requested_reason: str | None = None
    ended_at: _dt.datetime | None = None
    end_reason: str | None = None
    final_cost_usd: float | None = None
    note: str | None = None

    @property
    def is_open(self) -> bool:
        """True while the instance may exist and bill (``intent`` or ``running``)."""
        return self.state in OPEN_STATES

    @property
    def started_at(self) -> _dt.datetime:
        """When billing may have started (the intent time: the earliest, so never under-counted)."""
        return self.intent_at

    @property
    def price_per_hour(self) -> float:
        """Price in US dollars per hour."""
        return self.price_cents_per_hour / 100.0

    def end_or(self, now: _dt.datetime) -> _dt.datetime:
        """The end time, or ``now`` while open."""
        return self.ended_at if self.ended_at is not None else now

    def hours(self, now: _dt.datetime) -> float:
        """Billed hours so far (0 for a failed launch)."""
        if self.state == "failed":
            return 0.0
        return hours_between(self.started_at, self.end_or(now))

    def cost_usd(self, now: _dt.datetime) -> float:
        """Cost so far: the final cost once ended, else price times hours."""
        if self.state == "failed":
            return 0.0
        if self.final_cost_usd is not None and self.ended_at is not None:
            return self.final_cost_usd
        return self.price_per_hour * self.hours(now)

    def cost_between(self, start: _dt.datetime, end: _dt.datetime, now: _dt.datetime) -> float:
        """The part of the cost that falls in ``[start, end)``, prorated by time."""
        total_hours = self.hours(now)
        if total_hours <= 0 or end <= start:
            return 0.0
        overlap = hours_between(max(start, self.started_at), min(end, self.end_or(now)))
        return self.cost_usd(now) * min(overlap / total_hours, 1.0)

    def worst_case_usd(self, now: _dt.datetime) -> float:
        """What the instance costs if it runs to its hard limit (its final cost once ended)."""
        if not self.is_open:
            return self.cost_usd(now)
        return self.price_per_hour * hours_between(self.started_at, max(self.hard_limit_at, now))


_TIME_FIELDS = {f.name for f in dataclasses.fields(LedgerRecord) if f.type in ("_dt.datetime", "_dt.datetime | None")}
