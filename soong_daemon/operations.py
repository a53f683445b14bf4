"""Changes to the persisted state, each applied inside one ``StateStore.transaction``.

The web workers and the enforcer share these, so an extension granted by one
worker, a keep-alive seen by another and a shutdown decided by the enforcer all
land in the same file under the same lock.
"""

from __future__ import annotations

from typing import Iterable

from soong_daemon import rules
from soong_daemon.activity import ACTIVE, UNKNOWN, Observation
from soong_daemon.config import DaemonConfig
from soong_daemon.state import State

MAX_EXTENSIONS_KEPT = 1000
MAX_IDEMPOTENCY_KEYS_KEPT = 1000


class IdempotencyKeyReused(ValueError):
    """An idempotency key already used for an extension of a different number of hours."""


class ShutdownUnderway(RuntimeError):
    """The shutdown is already decided; the lease can no longer be changed."""


def limits(state: State, config: DaemonConfig) -> rules.Limits:
    """The limits in force for this state under this configuration."""
    return rules.limits_from_state(state, hard_limit_hours=config.hard_limit_hours,
                                   idle_timeout_minutes=config.idle_timeout_minutes,
                                   preflight_grace_minutes=config.preflight_grace_minutes)


def tighten_hard_limit(state: State, config: DaemonConfig) -> None:
    """Persist the hard limit the configuration gives if it is earlier than the recorded one (never later)."""
    state["hard_limit_at"] = limits(state, config).hard_limit_at


def record_activity(state: State, now: float, source: str) -> None:
    """Note activity from ``source`` at ``now`` (the time never moves backwards)."""
    if state.get("last_activity_at") is None or now >= state["last_activity_at"]:
        state["last_activity_at"] = now
        state["last_activity_source"] = source
    counts = state.setdefault("activity_counts", {})
    counts[source] = counts.get(source, 0) + 1


def record_observations(state: State, now: float, observations: Iterable[Observation]) -> None:
    """Store what the polled sources said; active ones count as activity, unknown ones hold the idle timer."""
    previous = state.get("sources", {})
    sources = {}
    for obs in observations:
        sources[obs.source] = {"status": obs.status, "detail": obs.detail, "checked_at": now}
        if obs.status == ACTIVE:
            record_activity(state, now, obs.source)
        elif obs.status == UNKNOWN:
            before = previous.get(obs.source, {})
            sources[obs.source]["unknown_since"] = before.get("unknown_since", now) if before.get("status") == UNKNOWN else now
            if state.get("last_unknown_at") is None or now >= state["last_unknown_at"]:
                state["last_unknown_at"] = now
    state["sources"] = sources


def long_unknown_sources(state: State, now: float, limit: float) -> list[str]:
    """Sources that have been unreadable for more than ``limit`` seconds (they keep the idle timer held)."""
    return sorted(name for name, s in state.get("sources", {}).items()
                  if s.get("status") == UNKNOWN and now - s.get("unknown_since", now) > limit)


def grant_extension(state: State, now: float, hours: float, config: DaemonConfig) -> float:
    """Add ``hours`` to the lease; return the new end. ExtensionRefused past the hard limit."""
    if state.get("shutdown"):
        raise ShutdownUnderway(f"shutdown already decided ({state['shutdown']['reason']})")
    current = limits(state, config)
    new_end = rules.extended_lease_end(state["lease_end"], hours, current.hard_limit_at)
    state["lease_end"] = new_end
    state["granted_hours"] = state.get("granted_hours", 0.0) + hours
    extensions = state.setdefault("extensions", [])
    extensions.append({"at": now, "hours": hours})
    del extensions[:-MAX_EXTENSIONS_KEPT]
    return new_end


def replayed_extension(state: State, key: str, hours: float) -> dict | None:
    """The answer already given to an extension with this idempotency key (None for a new key).

    IdempotencyKeyReused when the key was used for a different number of hours.
    """
    entry = state.get("extend_keys", {}).get(key)
    if entry is None:
        return None
    if entry["hours"] != hours:
        raise IdempotencyKeyReused(f"this Idempotency-Key was already used to extend by {entry['hours']:g} h")
    return dict(entry["answer"])


def remember_extension(state: State, key: str, hours: float, answer: dict) -> None:
    """Keep the answer to a granted extension under its idempotency key (the latest keys only)."""
    keys = state.setdefault("extend_keys", {})
    keys[key] = {"hours": hours, "answer": answer}
    for old in list(keys)[:-MAX_IDEMPOTENCY_KEYS_KEPT]:
        del keys[old]


def record_preflight_failure(state: State, failed_at: float, reason: str) -> bool:
    """Note the bootstrap's failed preflight (once; the first failure counts); True if this call noted it."""
    if (state.get("preflight") or {}).get("status") == "failed":
        return False
    state["preflight"] = {"status": "failed", "failed_at": failed_at, "reason": reason}
    return True


def decide_shutdown(state: State, now: float, reason: str, detail: str) -> bool:
    """Record the shutdown decision once; True if this call made it (a second decision changes nothing)."""
    if state.get("shutdown"):
        return False
    state["shutdown"] = {"reason": reason, "decided_at": now, "detail": detail}
    return True
