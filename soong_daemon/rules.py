"""The shutdown rules as pure functions: no clock, no files, no network.

Precedence: the hard limit (fixed at launch + ``hard_limit_hours``) overrides
everything, extensions and activity included; then the lease end; then a
failed preflight (the instance can serve nothing: it ends ``preflight_grace_minutes``
after the failure, so the user can log in and look); then the idle timeout. Idle time counts from the latest of: the daemon's first start,
the last activity, and the last moment an activity source could not be read
(an unreadable source is unknown, never idle).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

HARD_LIMIT = "hard_limit"
LEASE_EXPIRED = "lease_expired"
IDLE = "idle"
REQUESTED = "requested"
PREFLIGHT_FAILED = "preflight_failed"

#: Reasons in precedence order (the first that applies wins).
REASONS = (HARD_LIMIT, LEASE_EXPIRED, PREFLIGHT_FAILED, IDLE)
NEVER = math.inf


@dataclasses.dataclass(frozen=True)
class Limits:
    """The limits in force at one moment (all times in epoch seconds)."""

    hard_limit_at: float
    lease_end: float
    idle_timeout: float
    idle_since: float
    preflight_deadline: float | None = None


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the rules say at ``now``: shut down (and why), or when the next rule fires."""

    shutdown: bool
    reason: str | None
    next_at: float
    next_reason: str
    idle_seconds: float


class ExtensionRefused(ValueError):
    """An extension that would carry the lease past the hard limit."""

    def __init__(self, hours: float, max_hours: float) -> None:
        self.hours = hours
        self.max_hours = max(0.0, max_hours)
        super().__init__(
            f"extending by {hours:g} h would pass the hard limit; at most {self.max_hours:.2f} h can still be added")


def idle_since(created_at: float, last_activity_at: float | None, last_unknown_at: float | None) -> float:
    """The moment idle time counts from."""
    return max(t for t in (created_at, last_activity_at, last_unknown_at) if t is not None)


def preflight_deadline(state: Mapping[str, Any], grace_minutes: float) -> float | None:
    """When a failed preflight ends the instance: the failure's time plus the grace; None without a failure."""
    preflight = state.get("preflight") or {}
    if preflight.get("status") != "failed" or preflight.get("failed_at") is None:
        return None
    return float(preflight["failed_at"]) + grace_minutes * 60


def limits_from_state(state: Mapping[str, Any], *, hard_limit_hours: float, idle_timeout_minutes: float,
                      preflight_grace_minutes: float = 10.0) -> Limits:
    """The limits a persisted state and the current configuration give.

    The hard limit is the earlier of the one recorded at first start and the one
    the configuration gives now: editing the config can only bring it closer.
    """
    hard_limit_at = min(float(state["hard_limit_at"]), float(state["launched_at"]) + hard_limit_hours * 3600)
    return Limits(
        hard_limit_at=hard_limit_at,
        lease_end=float(state["lease_end"]),
        idle_timeout=idle_timeout_minutes * 60,
        idle_since=idle_since(state["created_at"], state.get("last_activity_at"), state.get("last_unknown_at")),
        preflight_deadline=preflight_deadline(state, preflight_grace_minutes),
    )


def evaluate(now: float, limits: Limits) -> Verdict:
    """Apply the rules at ``now``."""
    idle_seconds = max(0.0, now - limits.idle_since)
    deadlines = {
        HARD_LIMIT: limits.hard_limit_at,
        LEASE_EXPIRED: limits.lease_end,
        PREFLIGHT_FAILED: NEVER if limits.preflight_deadline is None else limits.preflight_deadline,
        IDLE: limits.idle_since + limits.idle_timeout,
    }
    due = {
        HARD_LIMIT: now >= limits.hard_limit_at,
        LEASE_EXPIRED: now >= limits.lease_end,
        PREFLIGHT_FAILED: now >= deadlines[PREFLIGHT_FAILED],
        IDLE: idle_seconds >= limits.idle_timeout,
    }
    for reason in REASONS:
        if due[reason]:
            return Verdict(True, reason, deadlines[reason], reason, idle_seconds)
    next_reason = min(REASONS, key=lambda r: (deadlines[r], REASONS.index(r)))
    return Verdict(False, None, deadlines[next_reason], next_reason, idle_seconds)


def warning_due(now: float, verdict: Verdict, warn_seconds: float) -> bool:
    """True when no shutdown is decided yet but the next one is at most ``warn_seconds`` away."""
    return not verdict.shutdown and warn_seconds > 0 and verdict.next_at - now <= warn_seconds


def parse_hours(value: Any) -> float:
    """Validate the ``hours`` of an extension request: a finite number above zero (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("'hours' must be a number")
    try:
        hours = float(value)
    except OverflowError:  # an integer beyond float range (json gives ints of any size)
        raise ValueError("'hours' must be a finite number") from None
    if not math.isfinite(hours):
        raise ValueError("'hours' must be a finite number")
    if hours <= 0:
        raise ValueError("'hours' must be greater than zero")
    return hours


def extended_lease_end(lease_end: float, hours: float, hard_limit_at: float) -> float:
    """The lease end after adding ``hours``; ExtensionRefused if that passes the hard limit."""
    new_end = lease_end + hours * 3600
    if new_end > hard_limit_at:
        raise ExtensionRefused(hours, (hard_limit_at - lease_end) / 3600)
    return new_end
