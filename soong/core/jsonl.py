"""Append-only JSON Lines files that survive crashes and concurrent writers.

Each record is one line written with one ``write()`` on a descriptor opened with
``O_APPEND`` (the kernel places it at the end even with other writers), under an
exclusive ``flock`` (so writers on file systems without atomic appends do not
interleave either), then ``fsync``-ed before the call returns. A line cut short by
a crash (kill -9, power loss) is closed with a newline by the next writer so the
following record starts on its own line; readers skip lines that do not parse.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterator

from soong.core.paths import private_dir


@contextlib.contextmanager
def locked(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (created 0600); yield False if not blocking and busy."""
    private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def append_json_line(path: Path, record: Any, *, mode: int = 0o600) -> None:
    """Append ``record`` as one JSON line to ``path`` and fsync it (file created with ``mode``)."""
    path = Path(path)
    line = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8") + b"\n"
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as reader:
                reader.seek(size - 1)
                if reader.read(1) != b"\n":
                    line = b"\n" + line  # close a line a crashed writer left unfinished
        view = memoryview(line)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json_lines(path: Path) -> list[Any]:
    """Every well-formed record of a JSON Lines file (a missing file is empty)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    records = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash
    return records
