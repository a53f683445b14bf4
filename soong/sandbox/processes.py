"""Background processes the sandbox starts, recorded so they can be found and stopped.

Each process gets a JSON record (pid, command, port, started-at). Before a recorded
pid is signalled, its command line is compared with the record, so a reused pid is
never killed by mistake.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from soong.core.atomic import write_private


@dataclasses.dataclass
class ProcessRecord:
    """A background process the sandbox owns."""

    name: str
    pid: int
    argv: list[str]
    port: int | None = None
    log: str | None = None
    started_at: float = 0.0
    extra: dict = dataclasses.field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write the record atomically."""
        write_private(path, json.dumps(dataclasses.asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> "ProcessRecord | None":
        """Read a record; None if it is missing or unreadable."""
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def cmdline(pid: int) -> list[str] | None:
    """The command line of a live process, or None if there is none (or it is a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
    if state == "Z" or not raw:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_running(record: ProcessRecord) -> bool:
    """Whether the recorded pid is alive and still runs the recorded command."""
    current = cmdline(record.pid)
    if current is None:
        return False
    # gunicorn renames its processes; compare the program and first arguments loosely.
    wanted = [Path(part).name for part in record.argv[:2]]
    return all(any(w in part for part in current) for w in wanted) or current[: len(record.argv)] == record.argv


def spawn(name: str, argv: list[str], *, log: Path, env: dict | None = None, port: int | None = None,
          cwd: Path | None = None) -> ProcessRecord:
    """Start ``argv`` in its own session (it outlives the caller), output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=cwd, start_new_session=True, close_fds=True)
    return ProcessRecord(name=name, pid=proc.pid, argv=list(argv), port=port, log=str(log), started_at=time.time())


def stop(record: ProcessRecord, timeout: float = 10.0) -> bool:
    """SIGTERM the process group, then SIGKILL after ``timeout``; False if it was not running."""
    if not is_running(record):
        return False
    try:
        os.killpg(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(record.pid)
        if cmdline(record.pid) is None:
            return True
        time.sleep(0.05)
    try:
        os.killpg(record.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(record.pid)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
