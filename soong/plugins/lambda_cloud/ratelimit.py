"""A client-side rate limiter that holds across every soong process of a profile.

Lambda allows about one request per second and one launch per twelve seconds;
soong keeps 1.1 s and 12.5 s by default, since requests reach the API with some
jitter and an early one would be refused.
Several soong commands (a ``start``, a ``status`` in another terminal, the
watchdog) share one budget, so the next free slot lives in a small JSON file
under the profile's state directory, guarded by ``fcntl.flock``. A caller takes
a slot under the lock (a reservation: the file says when the next one is free)
and then sleeps until its slot without holding the lock. Slots are spaced from
the previous slot and from the previous answer, so a request delayed on its way
(a slow network, a busy server) cannot make the next one arrive too early.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

_MAX_AHEAD = 3600.0  # a reservation further ahead than this is treated as a clock jump


class RateLimiter:
    """Spaces requests ``general_interval`` apart, and launches ``launch_interval`` apart.

    :param path: the shared state file (None: this process only).
    :param clock: wall clock, epoch seconds (shared between processes).
    :param sleep: how to wait.
    """

    def __init__(self, path: Path | None, *, general_interval: float = 1.1, launch_interval: float = 12.5,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self.path = path
        self.general_interval = max(0.0, general_interval)
        self.launch_interval = max(0.0, launch_interval)
        self.clock = clock
        self.sleep = sleep
        self._thread_lock = threading.Lock()
        self._memory: dict = {"general": [], "launch": 0.0, "general_done": 0.0, "launch_done": 0.0}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict]:
        with self._thread_lock:
            if self.path is None:
                yield self._memory
                return
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                os.fchmod(fd, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX)
                raw = b""
                while chunk := os.read(fd, 65536):
                    raw += chunk
                state = _load(raw)
                yield state
                data = json.dumps(state).encode()
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.write(fd, data)
            finally:
                os.close(fd)  # also releases the flock

    def reserve(self, *, launch: bool = False) -> float:
        """Take the next free slot; return how many seconds from now it starts (no waiting).

        Slots are kept ``general_interval`` apart; a launch also waits for the launch
        interval, and a general request may take a free gap before a pending launch.
        """
        with self._locked() as state:
            now = self.clock()
            slots = sorted(t for t in state["general"] if now - self.general_interval < t <= now + _MAX_AHEAD)
            earliest = max(now, min(state["general_done"], now + _MAX_AHEAD) + self.general_interval)
            if launch:
                if state["launch"] > now + _MAX_AHEAD:
                    state["launch"] = now
                earliest = max(earliest, state["launch"],
                               min(state["launch_done"], now + _MAX_AHEAD) + self.launch_interval)
            start = _fit(slots, earliest, self.general_interval)
            if launch:
                state["launch"] = start + self.launch_interval
            if self.general_interval > 0:
                slots.append(start)
            state["general"] = sorted(slots)[-1000:]
            return start - now

    def complete(self, *, launch: bool = False) -> None:
        """Note that a request (a launch if ``launch``) has just been answered or failed.

        The next slot starts no earlier than one interval after this: a request
        that waited in a queue on the way cannot make the next one arrive early.
        """
        with self._locked() as state:
            now = self.clock()
            state["general_done"] = max(state["general_done"], now)
            if launch:
                state["launch_done"] = max(state["launch_done"], now)

    def acquire(self, *, launch: bool = False) -> float:
        """Wait for a slot (a launch slot if ``launch``); return the seconds waited."""
        wait = self.reserve(launch=launch)
        if wait > 0:
            self.sleep(wait)
        return wait


def _load(raw: bytes) -> dict:
    try:
        data = json.loads(raw or b"{}")
        general = [float(t) for t in data.get("general", [])]
        launch = float(data.get("launch", 0.0))
        done = float(data.get("general_done", 0.0)), float(data.get("launch_done", 0.0))
    except (ValueError, TypeError, AttributeError):
        general, launch, done = [], 0.0, (0.0, 0.0)
    return {"general": general, "launch": launch, "general_done": done[0], "launch_done": done[1]}


def _fit(slots: list[float], earliest: float, interval: float) -> float:
    """The first time >= ``earliest`` at least ``interval`` away from every (sorted) slot."""
    start = earliest
    for slot in slots:
        if slot + interval <= start:
            continue
        if slot >= start + interval:
            break
        start = slot + interval
    return start
