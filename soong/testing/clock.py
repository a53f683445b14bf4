"""A manual clock for tests: time moves only when someone sleeps on it."""

from __future__ import annotations


class ManualClock:
    """``clock()`` returns the current fake time; ``clock.sleep(s)`` records and advances it."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        """Advance the clock by ``seconds`` (and remember the call)."""
        self.sleeps.append(seconds)
        self.now += seconds
