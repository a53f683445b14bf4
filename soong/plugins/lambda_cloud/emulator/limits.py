"""Server-side sliding-window rate limits, like the real API's."""

from __future__ import annotations

import collections

from soong.plugins.lambda_cloud.emulator.config import RateLimit


class SlidingWindow:
    """Accepts at most ``limit`` events in any window of ``period`` seconds."""

    def __init__(self) -> None:
        self._times: collections.deque[float] = collections.deque()

    def check(self, rule: RateLimit, now: float) -> float | None:
        """None if an event at ``now`` is allowed, else the seconds until it would be."""
        if not rule.enabled:
            return None
        while self._times and self._times[0] <= now - rule.period:
            self._times.popleft()
        if len(self._times) < rule.limit:
            return None
        return self._times[-rule.limit] + rule.period - now

    def record(self, now: float) -> None:
        """Count an accepted event."""
        self._times.append(now)
        while len(self._times) > 10_000:
            self._times.popleft()

    def reset(self) -> None:
        """Forget every event."""
        self._times.clear()
