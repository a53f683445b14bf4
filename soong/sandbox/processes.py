"""Background processes the sandbox starts, recorded so they can be found and stopped.

Each process gets a JSON record (pid, command, port, started-at). Before a recorded
pid is signalled, its command line is compared with the record, so a reused pid is
never killed by mistake. Every process is started in its own session (its pid is
its process group), and the sandbox marks all of them with an environment
variable, so :func:`marked_processes` finds every one of them (and their
children) in ``/proc`` even after a record was lost.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

from soong.core.atomic import write_private
from soong.core.paths import private_dir

#: Processes this process started and has not collected yet (so none lingers as a zombie).
_CHILDREN: dict[int, subprocess.Popen] = {}


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
    """Whether the recorded pid is alive and still the process that was recorded.

    A record made by :func:`spawn` holds the process's start time (from
    ``/proc/<pid>/stat``), which a reused pid cannot match; older records fall
    back to comparing the command line.
    """
    current = cmdline(record.pid)
    if current is None:
        return False
    ticks = record.extra.get("start_ticks")
    if ticks is not None:
        return start_ticks(record.pid) == ticks
    # gunicorn may rename its processes; compare the program and first arguments loosely.
    wanted = [Path(part).name for part in record.argv[:2]]
    return all(any(w in part for part in current) for w in wanted) or current[: len(record.argv)] == record.argv


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (None if there is no such process)."""
    fields = _stat_fields(pid)
    if not fields:
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def spawn(name: str, argv: list[str], *, log: Path, env: dict | None = None, port: int | None = None,
          cwd: Path | None = None) -> ProcessRecord:
    """Start ``argv`` in its own session (it outlives the caller), output to ``log`` (0600)."""
    private_dir(log.parent)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT,
                                env=env, cwd=cwd, start_new_session=True, close_fds=True)
    finally:
        os.close(fd)
    _CHILDREN[proc.pid] = proc
    return ProcessRecord(name=name, pid=proc.pid, argv=list(argv), port=port, log=str(log), started_at=time.time(),
                         extra={"start_ticks": start_ticks(proc.pid)})


def stop(record: ProcessRecord, timeout: float = 10.0, *, marker: tuple[str, str] | None = None) -> bool:
    """SIGTERM the process group, then SIGKILL after ``timeout``; False if it was not running.

    With ``marker`` (an environment ``(name, value)`` pair), members of the group
    that outlive their leader (or whose leader was already gone) and carry the
    marker are killed too.
    """
    running = is_running(record)
    if running:
        try:
            os.killpg(record.pid, signal.SIGTERM)
        except ProcessLookupError:
            running = False
        except PermissionError:
            os.kill(record.pid, signal.SIGTERM)
    if running:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(record.pid)
            if cmdline(record.pid) is None and not _marked_members(record.pid, marker):
                break
            time.sleep(0.05)
        else:
            try:
                os.killpg(record.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap(record.pid)
    leftovers = _marked_members(record.pid, marker)
    kill_all(leftovers)
    return running


def _marked_members(pgid: int, marker: tuple[str, str] | None) -> list[int]:
    if marker is None:
        return []
    return [pid for pid in group_members(pgid) if has_marker(pid, *marker)]


def live_pids() -> Iterator[int]:
    """Pids of every process in /proc (zombies included)."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``."""
    members = []
    for pid in live_pids():
        fields = _stat_fields(pid)
        if fields and fields[0] != "Z" and fields[2] == str(pgid):
            members.append(pid)
    return members


def has_marker(pid: int, name: str, value: str) -> bool:
    """Whether process ``pid`` has ``name=value`` in its environment (False if unreadable)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{name}={value}".encode() in environ.split(b"\0")


def marked_processes(name: str, value: str) -> list[int]:
    """Live (not zombie) processes whose environment holds ``name=value``, this process excluded."""
    found = []
    for pid in live_pids():
        if pid == os.getpid():
            continue
        fields = _stat_fields(pid)
        if fields and fields[0] != "Z" and has_marker(pid, name, value):
            found.append(pid)
    return found


def kill_all(pids: list[int], sig: int = signal.SIGKILL, wait: float = 2.0) -> None:
    """Send ``sig`` to each pid that still exists and wait up to ``wait`` seconds for them to end."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            continue
    deadline = time.monotonic() + wait
    while True:
        for pid in pids:
            _reap(pid)
        if all(cmdline(pid) is None for pid in pids) or time.monotonic() >= deadline:
            return
        time.sleep(0.02)


def reap_children() -> None:
    """Collect every process :func:`spawn` started here that has exited (no zombies left)."""
    for pid in list(_CHILDREN):
        _reap(pid)


def _reap(pid: int) -> None:
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        del _CHILDREN[pid]
