"""The emulator's own record of every API request, for tests to check limits and faults."""

from __future__ import annotations

import collections
import threading
from typing import Any


class RequestLog:
    """A bounded, thread-safe list of request entries (dicts), numbered from 1.

    Each entry has ``seq``, ``t`` (real monotonic seconds since the emulator
    started: use it for rate checks), ``at`` (emulated epoch seconds), ``method``,
    ``path`` (relative to ``/api/v1``), ``status``, ``code`` (Lambda error code or
    None), ``rate_limited``, ``fault`` (action applied or None), ``launch``
    (True for launch requests), ``instance_ids`` (created by this request) and,
    when enabled, ``response`` (the body sent, parsed JSON or text).
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_entries)
        self._seq = 0
        self._lock = threading.Lock()

    def add(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Append an entry; return it with its ``seq``."""
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._entries.append(entry)
        return entry

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        """Entries with ``seq > since``."""
        with self._lock:
            return [dict(e) for e in self._entries if e["seq"] > since]

    def clear(self) -> None:
        """Forget every entry (numbering goes on)."""
        with self._lock:
            self._entries.clear()
