"""The bootstrap's preflight as the daemon sees it: from the boot log to ``/status`` and the shutdown rules.

The preflight runs right after the daemon is up and logs ``phase=preflight-ok``
or ``phase=preflight-failed <reason>``. A failed instance can serve nothing: the
enforcer records the failure in the state (:func:`record_from_boot`) and the
rules end the instance ``preflight_grace_minutes`` after the failure line's time
(on the daemon's clock, so a sped-up sandbox clock speeds the grace up too),
leaving time to log in and look. ``/status`` reports it at once
(:func:`status_part`), before the enforcer's next check.
"""

from __future__ import annotations

from typing import Any, Mapping

from soong_daemon import operations
from soong_daemon.clock import iso, parse_iso, wall_to_clock
from soong_daemon.config import DaemonConfig
from soong_daemon.state import State

PHASE_OK = "preflight-ok"
PHASE_FAILED = "preflight-failed"


def from_phases(phases: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The first preflight result in the boot log's phases: ``{"status", "message", "at"}``, or None (not run yet)."""
    for entry in phases:
        phase = entry.get("phase")
        if phase in (PHASE_OK, PHASE_FAILED):
            return {"status": "ok" if phase == PHASE_OK else "failed", "message": entry.get("message") or "",
                    "at": entry.get("at")}
    return None


def failed_at(config: DaemonConfig, line_time: Any) -> float | None:
    """The failure line's time on the daemon's clock; None if the line's time cannot be read."""
    wall = parse_iso(line_time) if line_time else None
    if wall is None:
        return None
    return wall_to_clock(wall, config.time_scale, config.launched_at_epoch)


def record_from_boot(state: State, config: DaemonConfig, phases: list[Mapping[str, Any]], now: float) -> bool:
    """Note a failed preflight from the boot log in ``state`` (inside a transaction); True if newly noted.

    A line whose time cannot be read counts from ``now``; a time in the future
    (a clock step) counts from ``now`` as well, so the grace is never longer than configured.
    """
    result = from_phases(phases)
    if result is None or result["status"] != "failed":
        return False
    at = failed_at(config, result["at"])
    at = now if at is None else min(at, now)
    return operations.record_preflight_failure(state, at, result["message"])


def status_part(state: State, config: DaemonConfig, boot: Mapping[str, Any]) -> dict[str, Any]:
    """The ``preflight`` object of ``/status``.

    ``status`` is ``pending`` (not run yet), ``ok`` or ``failed``; a failure has
    its one-line ``reason``, ``failed_at`` and ``terminate_at`` (daemon clock) and
    ``grace_minutes``.
    """
    grace = config.preflight_grace_minutes
    recorded = state.get("preflight") or {}
    if recorded.get("status") == "failed":
        at = float(recorded["failed_at"])
        return {"status": "failed", "reason": recorded.get("reason", ""), "failed_at": iso(at),
                "terminate_at": iso(at + grace * 60), "grace_minutes": grace}
    result = from_phases(list(boot.get("phases") or []))
    if result is None:
        return {"status": "pending", "reason": None, "failed_at": None, "terminate_at": None, "grace_minutes": grace}
    if result["status"] == "ok":
        return {"status": "ok", "reason": None, "summary": result["message"], "failed_at": None, "terminate_at": None,
                "grace_minutes": grace}
    at = failed_at(config, result["at"])
    return {"status": "failed", "reason": result["message"], "failed_at": None if at is None else iso(at),
            "terminate_at": None if at is None else iso(at + grace * 60), "grace_minutes": grace}
