"""A small real file system to fill up: a tmpfs mounted for one test (needs root)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str = "256k") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` on ``folder`` for the block; skip the test when that is not possible."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is made with a small tmpfs, and mounting one needs root")
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until its file system is full (ENOSPC); return the file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    block = b"\0" * 4096
    try:
        while True:
            os.write(fd, block)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    try:  # the last partial page too
        with open(filler, "ab", buffering=0) as handle:
            while handle.write(b"\0"):
                pass
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    return filler
