"""The emulated wall clock that drives instance state changes.

It runs with real time plus an offset by default; tests freeze it, set it or
move it forward (through the admin API or directly) instead of sleeping.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
from typing import Callable


class EmulatorClock:
    """Emulated time in epoch seconds: ``source() + offset``, or a frozen value.

    :param source: the real clock (``time.time`` by default).
    """

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self._source = source
        self._offset = 0.0
        self._frozen: float | None = None
        self._lock = threading.Lock()

    def now(self) -> float:
        """Current emulated time, epoch seconds."""
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return self._source() + self._offset

    def now_datetime(self) -> _dt.datetime:
        """Current emulated time as an aware UTC datetime."""
        return _dt.datetime.fromtimestamp(self.now(), _dt.timezone.utc)

    def advance(self, seconds: float) -> float:
        """Move emulated time forward (frozen or not); return the new time."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            if self._frozen is not None:
                self._frozen += seconds
            else:
                self._offset += seconds
        return self.now()

    def set(self, epoch: float) -> float:
        """Jump to ``epoch`` (keeps running unless frozen)."""
        with self._lock:
            if self._frozen is not None:
                self._frozen = float(epoch)
            else:
                self._offset = float(epoch) - self._source()
        return self.now()

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or restart) the emulated clock at its current value."""
        with self._lock:
            if frozen and self._frozen is None:
                self._frozen = self._source() + self._offset
            elif not frozen and self._frozen is not None:
                self._offset = self._frozen - self._source()
                self._frozen = None

    @property
    def frozen(self) -> bool:
        """Whether the clock is frozen."""
        return self._frozen is not None
