"""What ``GET /status`` and ``GET /metrics`` report, built from the state (pure functions)."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

from soong_daemon import __version__, operations, preflight, prometheus, rules
from soong_daemon.clock import iso
from soong_daemon.config import DaemonConfig
from soong_daemon.secrets_status import secrets_part
from soong_daemon.state import State


def _iso_or_none(moment: float | None) -> str | None:
    return None if moment is None else iso(moment)


def _process_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def enforcer_summary(state: State, config: DaemonConfig, real_now: float) -> dict[str, Any]:
    """When the enforcer last checked (wall-clock), and whether it is running: its process exists and checked lately."""
    enforcer = state.get("enforcer") or {}
    heartbeat = enforcer.get("heartbeat")
    if heartbeat is None:
        return {"running": False, "pid": None, "last_check_at": None, "seconds_since_check": None}
    age = max(0.0, real_now - heartbeat)
    running = age <= 3 * config.check_interval_seconds + 10 and _process_alive(enforcer.get("pid"))
    return {"running": running, "pid": enforcer.get("pid"), "last_check_at": iso(heartbeat),
            "seconds_since_check": round(age, 1)}


def _clock_part(state: State) -> dict[str, Any] | None:
    """How the launch time was fixed on this machine's clock at the first start (see ``soong_daemon.skew``)."""
    clock = state.get("clock")
    if not clock:
        return None
    offset = clock.get("provider_offset_seconds")
    return {"status": clock.get("status"), "config_launched_at": _iso_or_none(clock.get("config_launched_at")),
            "first_start": _iso_or_none(clock.get("first_start")),
            "skew_seconds": round(float(clock.get("skew_seconds", 0.0)), 1),
            "provider_offset_seconds": None if offset is None else round(float(offset), 1)}


def _state_part(state: State, config: DaemonConfig, boot: dict[str, Any]) -> dict[str, Any]:
    """Everything in the status that changes only when the state file or the boot log does."""
    limits = operations.limits(state, config)
    shutdown = state.get("shutdown")
    termination = state.get("termination")
    return {
        "instance_id": state.get("instance_id"),
        "instance_name": config.instance_name or None,
        "model": config.model or None,
        "now": None,
        "launched_at": iso(state["launched_at"]),
        "uptime_seconds": None,
        "lease": {
            "start": iso(state["lease_start"]),
            "end": iso(limits.lease_end),
            "seconds_left": None,
            "initial_end": iso(state["initial_lease_end"]),
            "granted_hours": state.get("granted_hours", 0.0),
            "extensions": [{"at": iso(e["at"]), "hours": e["hours"]} for e in state.get("extensions", [])],
        },
        "hard_limit": {"at": iso(limits.hard_limit_at), "hours": config.hard_limit_hours, "seconds_left": None},
        "idle": {
            "timeout_seconds": limits.idle_timeout,
            "idle_seconds": None,
            "since": iso(limits.idle_since),
            "deadline": iso(limits.idle_since + limits.idle_timeout),
        },
        "last_activity": {"at": _iso_or_none(state.get("last_activity_at")), "source": state.get("last_activity_source")},
        "activity_counts": dict(state.get("activity_counts", {})),
        "sources": {name: {"status": s["status"], "detail": s["detail"], "checked_at": iso(s["checked_at"]),
                           "unknown_since": _iso_or_none(s.get("unknown_since"))}
                    for name, s in state.get("sources", {}).items()},
        "next_shutdown": None,
        "shutdown": None if not shutdown else {
            "reason": shutdown["reason"], "decided_at": iso(shutdown["decided_at"]), "detail": shutdown.get("detail")},
        "termination": None if not termination else {
            "outcome": termination["outcome"], "attempts": termination["attempts"],
            "last_error": termination.get("last_error"), "instance_status": termination.get("instance_status"),
            "powered_off": termination.get("powered_off", False)},
        "boot": boot,
        "preflight": preflight.status_part(state, config, boot),
        "secrets": secrets_part(config, boot),
        "gpu": state.get("gpu"),
        "enforcer": None,
        "clock": _clock_part(state),
        "time_scale": config.time_scale,
        "version": __version__,
    }


def _with_time(part: dict[str, Any], state: State, config: DaemonConfig, now: float, real_now: float) -> dict[str, Any]:
    """A copy of ``part`` with the fields that depend on the time filled in."""
    limits = operations.limits(state, config)
    verdict = rules.evaluate(now, limits)
    doc = dict(part)
    doc["now"] = iso(now)
    doc["uptime_seconds"] = round(max(0.0, now - state["launched_at"]), 1)
    doc["lease"] = {**part["lease"], "seconds_left": round(max(0.0, limits.lease_end - now), 1)}
    doc["hard_limit"] = {**part["hard_limit"], "seconds_left": round(max(0.0, limits.hard_limit_at - now), 1)}
    doc["idle"] = {**part["idle"], "idle_seconds": round(verdict.idle_seconds, 1)}
    if not state.get("shutdown"):
        doc["next_shutdown"] = {"at": iso(verdict.next_at), "reason": verdict.next_reason}
    doc["enforcer"] = enforcer_summary(state, config, real_now)
    return doc


def status_document(state: State, config: DaemonConfig, now: float, boot: dict[str, Any],
                    real_now: float | None = None) -> dict[str, Any]:
    """The JSON body of ``GET /status`` (see docs/daemon.md for every field)."""
    return _with_time(_state_part(state, config, boot), state, config, now,
                      time.time() if real_now is None else real_now)


class StatusView:
    """Builds /status bodies at whole-second resolution, cached until the state, the boot log or the second changes.

    ``StateStore.read`` and ``BootLog.summary`` hand back the same objects until
    their files change, so their identity tells whether a cached body is current;
    every time in the document is given to the second anyway.
    """

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self._part_key: tuple[int, int] | None = None
        self._part: dict[str, Any] | None = None
        self._body_key: tuple | None = None
        self._body = b""
        self._alive: tuple = ()

    def body(self, state: State, boot: dict[str, Any], now: float, real_now: float) -> bytes:
        """The JSON body at ``now`` (rounded down to the second)."""
        now, real_now = math.floor(now), math.floor(real_now)
        part_key = (id(state), id(boot["phases"]))
        body_key = (part_key, now, real_now)
        if body_key == self._body_key:
            return self._body
        if part_key != self._part_key or self._part is None:
            self._part, self._part_key = _state_part(state, self.config, boot), part_key
            self._alive = (state, boot["phases"])  # keep them alive so their ids stay theirs
        self._body = json.dumps(_with_time(self._part, state, self.config, now, real_now)).encode("utf-8")
        self._body_key = body_key
        return self._body


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
        ("soong_preflight_failed", "gauge", "1 once the enforcer has seen the bootstrap's preflight fail.",
         [({}, 1.0 if (state.get("preflight") or {}).get("status") == "failed" else 0.0)]),
        ("soong_terminate_attempts_total", "counter", "Terminate attempts made through the provider API.",
         [({}, termination.get("attempts", 0))]),
    ]
    return prometheus.render(families)
