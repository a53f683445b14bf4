"""The bootstrap's progress log: lines ``<ISO-8601 time> phase=<name> <message>``.

The bootstrap appends one line per phase (daemon-up, fs-mounted, sglang-installing,
sglang-loading, sglang-ready, n8n-ready, ...); ``/status`` reports the latest
phase and the whole list. Lines that do not fit the pattern are skipped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

MAX_BYTES = 64 * 1024
MAX_PHASES = 200
_LINE = re.compile(r"^(?P<at>\S+)\s+phase=(?P<phase>[A-Za-z0-9_.-]{1,64})(?:\s+(?P<message>.*))?$")


def parse_boot_log(text: str) -> list[dict[str, str]]:
    """The phases in ``text``, oldest first."""
    phases = []
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match:
            phases.append({"at": match["at"], "phase": match["phase"], "message": (match["message"] or "").strip()[:500]})
    return phases[-MAX_PHASES:]


class BootLog:
    """Reads the boot log at most once per change of the file (cheap enough for every /status)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._key: tuple[int, int, int] | None = None
        self._phases: list[dict[str, str]] = []

    def summary(self) -> dict[str, Any]:
        """``{"phase": latest or None, "phases": [...]}``; an absent or unreadable log gives no phases."""
        try:
            info = os.stat(self.path)
            key = (info.st_ino, info.st_mtime_ns, info.st_size)
            if key != self._key:
                with open(self.path, "rb") as handle:
                    if info.st_size > MAX_BYTES:
                        handle.seek(info.st_size - MAX_BYTES)
                    text = handle.read(MAX_BYTES).decode("utf-8", errors="replace")
                self._phases, self._key = parse_boot_log(text), key
        except OSError:
            if self._key is not None:
                self._phases, self._key = [], None
        return {"phase": self._phases[-1]["phase"] if self._phases else None, "phases": self._phases}
