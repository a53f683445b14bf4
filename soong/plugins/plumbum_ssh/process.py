"""Finding out whether a recorded pid is still the tunnel's ssh process, and stopping it safely.

A pid from a state file may by now belong to anything: it is signalled only when
the process still runs the exact command line that was recorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Sequence


def _proc_state(pid: int) -> str | None:
    """The state letter from /proc (``R``, ``S``, ``Z``...), or None if the process is gone or /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def is_running(pid: int | None) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if Path("/proc/self").exists():
        return _proc_state(pid) not in (None, "Z", "X")
    return True


def command_line(pid: int) -> tuple[str, ...] | None:
    """The argv of a running process, or None if it is gone.

    Linux reads ``/proc/<pid>/cmdline``; elsewhere ``ps`` gives the command as one
    string (returned as a 1-tuple).
    """
    proc = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self/cmdline").exists():
        try:
            raw = proc.read_bytes()
        except OSError:
            return None
        if not raw:
            return None  # zombie or kernel thread
        return tuple(part.decode("utf-8", "surrogateescape") for part in raw.rstrip(b"\0").split(b"\0"))
    try:
        out = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = out.stdout.strip()
    return (text,) if out.returncode == 0 and text else None


def is_our_process(pid: int | None, command: Sequence[str]) -> bool:
    """Whether ``pid`` is alive and still runs exactly ``command``."""
    if not pid or not command or not is_running(pid):
        return False
    seen = command_line(pid)
    if seen is None:
        return False
    if len(seen) == 1 and len(command) > 1:
        return seen[0] == " ".join(command)
    return tuple(seen) == tuple(command)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_process(pid: int | None, command: Sequence[str], *, timeout: float = 3.0) -> bool:
    """SIGTERM (then SIGKILL after ``timeout``) ``pid`` if it still runs ``command``.

    Returns True if the process was ours and is gone now, False if it was not
    ours to signal (already gone, or the pid now belongs to something else).
    """
    if not is_our_process(pid, command):
        return False
    assert pid is not None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not is_running(pid):
            return True
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    for _ in range(100):
        _reap(pid)
        if not is_running(pid):
            break
        time.sleep(0.02)
    return True
