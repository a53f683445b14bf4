"""What ``GET /status`` and ``GET /metrics`` report, built from the state (pure functions)."""

from __future__ import annotations

import time
from typing import Any

from soong_daemon import __version__, operations, prometheus, rules
from soong_daemon.clock import iso
from soong_daemon.config import DaemonConfig
from soong_daemon.state import State


def _iso_or_none(moment: float | None) -> str | None:
    return None if moment is None else iso(moment)


def enforcer_summary(state: State, config: DaemonConfig, real_now: float) -> dict[str, Any]:
    """When the enforcer last checked (wall-clock), and whether that is recent enough to call it running."""
    heartbeat = (state.get("enforcer") or {}).get("heartbeat")
    if heartbeat is None:
        return {"running": False, "last_check_at": None, "seconds_since_check": None}
    age = max(0.0, real_now - heartbeat)
    return {"running": age <= 3 * config.check_interval_seconds + 10, "last_check_at": iso(heartbeat),
            "seconds_since_check": round(age, 1)}


def status_document(state: State, config: DaemonConfig, now: float, boot: dict[str, Any],
                    real_now: float | None = None) -> dict[str, Any]:
    """The JSON body of ``GET /status`` (see docs/daemon.md for every field)."""
    limits = operations.limits(state, config)
    verdict = rules.evaluate(now, limits)
    shutdown = state.get("shutdown")
    termination = state.get("termination")
    return {
        "instance_id": state.get("instance_id"),
        "instance_name": config.instance_name or None,
        "model": config.model or None,
        "now": iso(now),
        "launched_at": iso(state["launched_at"]),
        "uptime_seconds": round(max(0.0, now - state["launched_at"]), 1),
        "lease": {
            "start": iso(state["lease_start"]),
            "end": iso(limits.lease_end),
            "seconds_left": round(max(0.0, limits.lease_end - now), 1),
            "initial_end": iso(state["initial_lease_end"]),
            "granted_hours": state.get("granted_hours", 0.0),
            "extensions": [{"at": iso(e["at"]), "hours": e["hours"]} for e in state.get("extensions", [])],
        },
        "hard_limit": {
            "at": iso(limits.hard_limit_at),
            "hours": config.hard_limit_hours,
            "seconds_left": round(max(0.0, limits.hard_limit_at - now), 1),
        },
        "idle": {
            "timeout_seconds": limits.idle_timeout,
            "idle_seconds": round(verdict.idle_seconds, 1),
            "since": iso(limits.idle_since),
            "deadline": iso(limits.idle_since + limits.idle_timeout),
        },
        "last_activity": {"at": _iso_or_none(state.get("last_activity_at")), "source": state.get("last_activity_source")},
        "activity_counts": dict(state.get("activity_counts", {})),
        "sources": {name: {"status": s["status"], "detail": s["detail"], "checked_at": iso(s["checked_at"])}
                    for name, s in state.get("sources", {}).items()},
        "next_shutdown": None if shutdown else {"at": iso(verdict.next_at), "reason": verdict.next_reason},
        "shutdown": None if not shutdown else {
            "reason": shutdown["reason"], "decided_at": iso(shutdown["decided_at"]), "detail": shutdown.get("detail")},
        "termination": None if not termination else {
            "outcome": termination["outcome"], "attempts": termination["attempts"],
            "last_error": termination.get("last_error"), "instance_status": termination.get("instance_status"),
            "powered_off": termination.get("powered_off", False)},
        "boot": boot,
        "gpu": state.get("gpu"),
        "enforcer": enforcer_summary(state, config, time.time() if real_now is None else real_now),
        "time_scale": config.time_scale,
        "version": __version__,
    }


def metrics_text(state: State, config: DaemonConfig, now: float) -> str:
    """The Prometheus text of ``GET /metrics``."""
    limits = operations.limits(state, config)
    verdict = rules.evaluate(now, limits)
    termination = state.get("termination") or {}
    sources = state.get("sources", {})
    families = [
        ("soong_lease_seconds_left", "gauge", "Seconds until the lease ends.", [({}, max(0.0, limits.lease_end - now))]),
        ("soong_hard_limit_seconds_left", "gauge", "Seconds until the hard limit.",
         [({}, max(0.0, limits.hard_limit_at - now))]),
        ("soong_idle_seconds", "gauge", "Seconds since the last activity.", [({}, verdict.idle_seconds)]),
        ("soong_idle_timeout_seconds", "gauge", "Idle timeout in seconds.", [({}, limits.idle_timeout)]),
        ("soong_uptime_seconds", "gauge", "Seconds since launch.", [({}, max(0.0, now - state["launched_at"]))]),
        ("soong_lease_granted_hours_total", "counter", "Hours added to the lease by extensions.",
         [({}, state.get("granted_hours", 0.0))]),
        ("soong_activity_total", "counter", "Activity observations by source.",
         [({"source": name}, count) for name, count in sorted(state.get("activity_counts", {}).items())]),
        ("soong_source_up", "gauge", "1 if the activity source could be read at the last check.",
         [({"source": name}, 0.0 if s["status"] == "unknown" else 1.0) for name, s in sorted(sources.items())]),
        ("soong_shutdown_decided", "gauge", "1 once a shutdown has been decided.",
         [({}, 1.0 if state.get("shutdown") else 0.0)]),
        ("soong_terminate_attempts_total", "counter", "Terminate attempts made through the provider API.",
         [({}, termination.get("attempts", 0))]),
    ]
    return prometheus.render(families)
