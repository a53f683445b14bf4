"""The enforcer's hold on the state: the file while it can be written, the last good state in memory when not.

A full disk (or any failure to write ``state.json``) must never switch
enforcement off. When a change cannot be written, the enforcer keeps the
changed state in memory and goes on deciding and acting from it: observations,
warnings, the shutdown decision and the termination all land there. Every
``RETRY_SECONDS`` it tries the file again, logging one error per failed try;
once a write succeeds, what was kept in memory is on disk and the memory is
dropped.

While the memory copy is in use, changes the web workers still manage to write
(an extension, once some space came back) are not lost: the file is read
(lock-free) at every use and ``merge`` takes the workers' fields from it and
the enforcer's own from memory.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any, Callable, TypeVar

from soong_daemon.state import State, StateStore, StateWriteError

log = logging.getLogger("soong_daemon.enforcer")

RETRY_SECONDS = 5.0
MAX_WARNINGS_KEPT = 50

#: Fields only the enforcer writes: in a merge, memory's copy wins.
ENFORCER_FIELDS = ("enforcer", "sources", "gpu", "termination", "clock")

T = TypeVar("T")


def _later(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def merge(disk: State, memory: State) -> State:
    """The state on disk with the enforcer's unsaved changes from ``memory`` laid over it.

    Fields the web workers write (lease end, extensions, idempotency keys) come
    from ``disk``; the enforcer's own from ``memory``; the rest combine so that
    nothing decided or observed is lost: the first shutdown decision, the later
    activity, the earlier hard limit and launch time.
    """
    out = copy.deepcopy(disk)
    for key in ENFORCER_FIELDS:
        if key in memory:
            out[key] = copy.deepcopy(memory[key])
    out["shutdown"] = disk.get("shutdown") or copy.deepcopy(memory.get("shutdown"))
    out["final_notice_sent"] = bool(disk.get("final_notice_sent") or memory.get("final_notice_sent"))
    out["instance_id"] = disk.get("instance_id") or memory.get("instance_id")
    for key in ("launched_at", "lease_start", "initial_lease_end", "hard_limit_at"):
        if key in disk and key in memory:
            out[key] = min(float(disk[key]), float(memory[key]))
    if "launched_at" in disk:  # a launch moved back in memory (clock skew) moves the extended lease end with it
        out["lease_end"] = min(float(disk["lease_end"]) - (float(disk["launched_at"]) - out["launched_at"]),
                               out["hard_limit_at"])
    if (memory.get("preflight") or {}).get("status") == "failed" and (disk.get("preflight") or {}).get("status") != "failed":
        out["preflight"] = copy.deepcopy(memory["preflight"])
    if (memory.get("last_activity_at") or 0) > (disk.get("last_activity_at") or 0):
        out["last_activity_at"] = memory["last_activity_at"]
        out["last_activity_source"] = memory.get("last_activity_source")
    out["last_unknown_at"] = _later(disk.get("last_unknown_at"), memory.get("last_unknown_at"))
    counts = dict(disk.get("activity_counts") or {})
    for source, count in (memory.get("activity_counts") or {}).items():
        counts[source] = max(count, counts.get(source, 0))
    out["activity_counts"] = counts
    sent = list(disk.get("warnings_sent") or [])
    sent += [key for key in memory.get("warnings_sent") or [] if key not in sent]
    out["warnings_sent"] = sent[-MAX_WARNINGS_KEPT:]
    return out


class StateKeeper:
    """Reads and changes the state for the enforcer; falls back to memory when the file cannot be written."""

    def __init__(self, store: StateStore, *, retry_seconds: float = RETRY_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.retry_seconds = retry_seconds
        self._monotonic = monotonic
        #: The latest state while it is not on disk (None: the file is up to date).
        self.memory: State | None = None
        self._next_try = 0.0
        self._failures = 0

    @property
    def unsaved(self) -> bool:
        """True while the enforcer works from memory because the state cannot be written."""
        return self.memory is not None

    def read(self) -> State:
        """The current state (do not modify it: use ``update``)."""
        if self.memory is not None:
            return self._current()
        try:
            return self.store.read()
        except StateWriteError as exc:  # no readable file, and a new one cannot be written
            self._failed(exc, None)
            return self._current()

    def update(self, change: Callable[[State], T]) -> T:
        """Apply ``change`` to the state and write it; when it cannot be written, keep it in memory.

        Returns what ``change`` returns. Errors raised by ``change`` itself propagate.
        """
        if self.memory is not None and self._monotonic() < self._next_try:
            return self._change_memory(change)
        done: dict[str, Any] = {}
        try:
            with self.store.transaction() as state:
                if self.memory is not None:
                    merged = merge(state, self.memory)
                    state.clear()
                    state.update(merged)
                done["result"] = change(state)
                done["state"] = state
        except StateWriteError as exc:
            self._failed(exc, done.get("state"))
            if "state" in done:
                return done["result"]
            return self._change_memory(change)
        if self.memory is not None:
            log.warning("the state file %s can be written again after %d failed attempt(s); what was decided "
                        "meanwhile is saved", self.store.path, self._failures)
        self.memory, self._failures = None, 0
        return done["result"]

    def _change_memory(self, change: Callable[[State], T]) -> T:
        state = self._current()
        result = change(state)
        self.memory = state
        return result

    def _current(self) -> State:
        """The memory copy, with whatever the web workers have written to the file since."""
        assert self.memory is not None
        disk = self.store.peek()
        if disk is not None:
            self.memory = merge(disk, self.memory)
        return self.memory

    def _failed(self, exc: OSError, changed: State | None) -> None:
        if changed is not None:
            self.memory = changed
        elif self.memory is None:
            self.memory = copy.deepcopy(self.store.peek()) or self.store.initial()
        self._failures += 1
        self._next_try = self._monotonic() + self.retry_seconds
        log.error("CANNOT WRITE THE STATE (%s); enforcing from the state kept in memory (lease, idle timeout and "
                  "hard limit still apply, a shutdown is still carried out); trying the file again in %g s",
                  exc.strerror or exc, self.retry_seconds)
