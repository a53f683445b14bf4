"""Clocks: the real one, and a scaled one a local sandbox uses to watch hours pass in seconds."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable, Protocol


class Clock(Protocol):
    """What the daemon needs from a clock: the time, and how long a span of it lasts for real."""

    def now(self) -> float:
        """Seconds since the epoch on this clock."""

    def real_seconds(self, seconds: float) -> float:
        """How many wall-clock seconds ``seconds`` of this clock take."""


class SystemClock:
    """The machine's wall clock."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def real_seconds(self, seconds: float) -> float:
        """A span lasts exactly as long as it says."""
        return seconds


class ScaledClock:
    """A clock that runs ``scale`` times faster than the wall clock from ``anchor`` on.

    Every process of one daemon builds it with the same anchor (the launch time
    from the configuration), so all of them agree on the time without talking.
    """

    def __init__(self, scale: float, anchor: float, base: Callable[[], float] = time.time) -> None:
        if scale < 1:
            raise ValueError("scale must be at least 1")
        self.scale = scale
        self.anchor = anchor
        self._base = base

    def now(self) -> float:
        """The scaled time: the anchor plus ``scale`` times the real time since it."""
        return self.anchor + (self._base() - self.anchor) * self.scale

    def real_seconds(self, seconds: float) -> float:
        """A span of scaled time takes ``1/scale`` as long for real."""
        return seconds / self.scale


def clock_for(time_scale: float, launched_at: float) -> Clock:
    """The clock a daemon configured with ``time_scale`` uses."""
    if time_scale == 1:
        return SystemClock()
    return ScaledClock(time_scale, launched_at)


def wall_to_clock(wall: float, time_scale: float, anchor: float) -> float:
    """The time on the clock :func:`clock_for` gives (``time_scale``, ``anchor``) at wall-clock time ``wall``.

    Lines in the boot log carry wall-clock times; a daemon on a sped-up clock
    (a sandbox) counts its grace periods from the same moment on its own clock.
    """
    if time_scale == 1:
        return wall
    return anchor + (wall - anchor) * time_scale


def parse_iso(text: str) -> float | None:
    """An ISO 8601 time (``2025-03-01T12:00:41Z``) as epoch seconds; None when it is not one."""
    try:
        moment = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def iso(moment: float) -> str:
    """An epoch time as ISO 8601 UTC with a trailing Z (whole seconds)."""
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
