"""The daemon's durable state: one JSON file on local disk shared by every process.

Writers take an exclusive ``fcntl.flock`` on a lock file beside it, read the
current state, change it and replace the file atomically (temporary file,
fsync, rename, fsync of the folder). Readers need no lock: they always see a
whole old file or a whole new one. A daemon restart, crash, kill -9 or reboot
therefore never loses a granted extension or resets the lease or hard limit.

Times in the state are seconds since the epoch on the daemon's clock.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from soong_daemon.config import DaemonConfig
from soong_daemon.skew import first_launch

log = logging.getLogger("soong_daemon.state")

STATE_VERSION = 1
STATE_FILE = "state.json"
LOCK_FILE = "state.lock"

State = dict[str, Any]


class _Corrupt(Exception):
    """The state file exists but cannot be understood."""


class StateWriteError(OSError):
    """The state folder cannot be written (a full disk, a read-only or failing file system)."""


def _write_error(path: Path, exc: OSError) -> StateWriteError:
    return StateWriteError(exc.errno, f"{path}: {exc.strerror or exc}")


def initial_state(config: DaemonConfig, now: float) -> State:
    """The state of a daemon that has never run on this machine before.

    ``now`` is this machine's clock at the first start: the lease and the hard
    limit count from the launch time ``skew.first_launch`` derives from the
    config's ``launched_at`` and it (never later than ``now``).
    """
    launched, clock = first_launch(config.launched_at_epoch, now, provider_check=config.time_scale == 1)
    hard_limit_at = launched + config.hard_limit_hours * 3600
    lease_end = min(launched + config.lease_hours * 3600, hard_limit_at)
    return {
        "version": STATE_VERSION,
        "instance_id": config.instance_id or None,
        "launched_at": launched,
        "created_at": now,
        "clock": clock,
        "hard_limit_at": hard_limit_at,
        "lease_start": launched,
        "initial_lease_end": lease_end,
        "lease_end": lease_end,
        "extensions": [],
        "granted_hours": 0.0,
        "last_activity_at": None,
        "last_activity_source": None,
        "last_unknown_at": None,
        "activity_counts": {},
        "sources": {},
        "gpu": None,
        "warnings_sent": [],
        "shutdown": None,
        "termination": None,
        "enforcer": None,
    }


class StateStore:
    """Atomic, lock-protected access to ``<state_dir>/state.json``.

    ``factory`` builds the initial state when the file is missing (first start)
    or unreadable; an unreadable file is kept aside as ``state.json.corrupt-<time>``
    and the state is rebuilt from the configuration, which can only shorten the
    lease (extensions are lost), never lengthen it.
    """

    def __init__(self, state_dir: Path, factory: Callable[[], State]) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / STATE_FILE
        self.lock_path = self.state_dir / LOCK_FILE
        self._factory = factory
        self._cache_key: tuple[int, int, int] | None = None
        self._cache: State | None = None
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    # ------------------------------------------------------------ reading

    def read(self) -> State:
        """The current state (do not modify it: use ``transaction``). Lock-free and cached."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            with self.transaction() as state:
                return copy.deepcopy(state)
        key = (info.st_ino, info.st_mtime_ns, info.st_size)
        if key == self._cache_key and self._cache is not None:
            return self._cache
        try:
            state = self._load_file()
        except _Corrupt:
            state = None
        if state is None:
            with self.transaction() as rebuilt:
                return copy.deepcopy(rebuilt)
        self._cache_key, self._cache = key, state
        return state

    def peek(self) -> State | None:
        """The state on disk, never creating or repairing it: None when there is none or it cannot be read."""
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        key = (info.st_ino, info.st_mtime_ns, info.st_size)
        if key == self._cache_key and self._cache is not None:
            return self._cache
        try:
            state = self._load_file()
        except (_Corrupt, OSError):
            return None
        if state is not None:
            self._cache_key, self._cache = key, state
        return state

    def initial(self) -> State:
        """The state a first start builds (from the configuration and the clock)."""
        return self._factory()

    def _load_file(self) -> State | None:
        """The state on disk; None if there is no file; _Corrupt if it cannot be understood."""
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return None
        try:
            state = json.loads(raw)
        except ValueError:
            raise _Corrupt() from None
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise _Corrupt()
        return state

    # ------------------------------------------------------------ writing

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the exclusive state lock (blocks until the holder lets go); StateWriteError if it cannot be made."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise _write_error(self.lock_path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[State]:
        """Yield the state under the lock; write it back atomically if it was changed.

        Keep the body short and never do network I/O inside it: every worker
        waits for the lock. A state folder that cannot be used raises
        StateWriteError (an OSError): before the body when the lock or the file
        cannot be opened, after it when the change cannot be written (the file
        is then left as it was).
        """
        with self.locked():
            try:
                state = self._load_file()
            except _Corrupt:
                state = self._recover()
            except OSError as exc:
                raise _write_error(self.path, exc) from None
            before = None if state is None else json.dumps(state, sort_keys=True)
            if state is None:
                state = self._factory()
            yield state
            if json.dumps(state, sort_keys=True) != before:
                self._write(state)

    def _recover(self) -> None:
        aside = self.path.with_name(f"{STATE_FILE}.corrupt-{int(time.time())}")
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            raise _write_error(self.path, exc) from None
        log.critical("state file %s was unreadable; kept it as %s and rebuilt the state from the config "
                         "(granted extensions are lost, so the lease can only have become shorter)", self.path, aside)

    def _write(self, state: State) -> None:
        try:
            self._write_file(state)
        except OSError as exc:
            raise _write_error(self.path, exc) from None

    def _write_file(self, state: State) -> None:
        raw = json.dumps(state, sort_keys=True, separators=(",", ":")).encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", suffix=".tmp", dir=self.state_dir)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.state_dir, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
