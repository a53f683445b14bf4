"""Records of persistent tunnels: one JSON file per instance under ``<state_dir>/tunnels/``.

A record is written as soon as a tunnel process exists (before waiting for it to
come up), so a tunnel is never orphaned by a crash or kill -9 of soong: the next
``soong tunnel status`` or ``stop`` finds it. Every write is atomic and private.
Backends share the folder; each record names the backend that owns it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from soong.core.atomic import write_private
from soong.core.errors import UsageError
from soong.core.paths import private_dir
from soong.core.types import Forward, TunnelRecord

_INSTANCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: Version of the record format.
FORMAT = 1


def target_for(context: Any, instance: Any, provider: Any = None) -> Any:
    """Where a tunnel backend reaches ``instance``: its address and the provider's login user.

    Asks ``provider`` (the context's provider when None) for its
    :meth:`~soong.core.interfaces.Provider.tunnel_target`.
    """
    return (provider if provider is not None else context.provider()).tunnel_target(instance)


def check_instance_id(instance_id: str) -> str:
    """Return ``instance_id`` if it is safe in a file name and an SSH host alias; raise UsageError otherwise."""
    if not isinstance(instance_id, str) or not _INSTANCE_ID.match(instance_id):
        raise UsageError(f"{instance_id!r} is not a valid instance id (letters, digits, '.', '_', '-')")
    return instance_id


def forward_to_dict(forward: Forward) -> dict[str, Any]:
    """A JSON-ready dict of one forward."""
    return dataclasses.asdict(forward)


def forward_from_dict(raw: dict[str, Any]) -> Forward:
    """Inverse of :func:`forward_to_dict` (unknown keys are ignored)."""
    known = {field.name for field in dataclasses.fields(Forward)}
    return Forward(**{key: value for key, value in raw.items() if key in known})


@dataclasses.dataclass(frozen=True)
class StoredTunnel:
    """What is remembered about one persistent tunnel.

    ``state`` is ``starting`` from the moment the process exists until its ports
    were proven to answer, then ``up``.
    """

    instance_id: str
    backend: str
    host: str
    forwards: tuple[Forward, ...]
    started_at: _dt.datetime
    pid: int | None = None
    command: tuple[str, ...] = ()
    name: str | None = None
    state: str = "starting"
    log_path: str | None = None

    def to_json(self) -> str:
        """The file's content."""
        data = {
            "format": FORMAT,
            "instance_id": self.instance_id,
            "backend": self.backend,
            "host": self.host,
            "name": self.name,
            "pid": self.pid,
            "command": list(self.command),
            "forwards": [forward_to_dict(f) for f in self.forwards],
            "started_at": self.started_at.isoformat(),
            "state": self.state,
            "log_path": self.log_path,
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "StoredTunnel":
        """Parse a file's content; raise ValueError when it is not a tunnel record."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        try:
            return cls(
                instance_id=check_instance_id(data["instance_id"]),
                backend=str(data["backend"]),
                host=str(data["host"]),
                forwards=tuple(forward_from_dict(f) for f in data["forwards"]),
                started_at=_dt.datetime.fromisoformat(data["started_at"]),
                pid=int(data["pid"]) if data.get("pid") is not None else None,
                command=tuple(str(part) for part in data.get("command") or ()),
                name=data.get("name"),
                state=str(data.get("state") or "starting"),
                log_path=data.get("log_path"),
            )
        except (KeyError, TypeError, UsageError) as exc:
            raise ValueError(f"not a tunnel record: {exc}") from None

    def to_record(self, alive: bool) -> TunnelRecord:
        """The public :class:`~soong.core.types.TunnelRecord` of this entry."""
        return TunnelRecord(instance_id=self.instance_id, backend=self.backend, forwards=self.forwards, pid=self.pid,
                            alive=alive, command=self.command, host=self.host, name=self.name, started_at=self.started_at)


class TunnelStore:
    """The folder of tunnel records of one profile.

    :param state_dir: the profile's state directory (records go in ``tunnels/``).
    """

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / "tunnels"

    def path(self, instance_id: str) -> Path:
        """The record file of an instance."""
        return self.dir / f"{check_instance_id(instance_id)}.json"

    def log_path(self, instance_id: str) -> Path:
        """Where the tunnel process of an instance writes its output."""
        return self.dir / f"{check_instance_id(instance_id)}.log"

    def save(self, stored: StoredTunnel) -> None:
        """Write (or replace) the record of ``stored.instance_id``."""
        write_private(self.path(stored.instance_id), stored.to_json())

    def load(self, instance_id: str) -> StoredTunnel | None:
        """The record of an instance, or None (also for an unreadable file, which is removed)."""
        path = self.path(instance_id)
        try:
            return StoredTunnel.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, UnicodeDecodeError):
            self._discard(path)
            return None

    def all(self) -> list[StoredTunnel]:
        """Every readable record, by instance id; unreadable files are removed."""
        if not self.dir.is_dir():
            return []
        found = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                found.append(StoredTunnel.from_json(path.read_text(encoding="utf-8")))
            except FileNotFoundError:
                continue
            except (OSError, ValueError, UnicodeDecodeError):
                self._discard(path)
        return found

    def remove(self, instance_id: str) -> bool:
        """Delete the record (and log) of an instance; False if there was no record."""
        existed = self._discard(self.path(instance_id))
        self._discard(self.log_path(instance_id))
        return existed

    @contextlib.contextmanager
    def lock(self, instance_id: str) -> Iterator[None]:
        """Hold an exclusive lock on an instance's tunnel (start and stop take it)."""
        import fcntl

        private_dir(self.dir)
        fd = os.open(self.dir / f"{check_instance_id(instance_id)}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @staticmethod
    def _discard(path: Path) -> bool:
        try:
            path.unlink()
            return True
        except FileNotFoundError:
            return False
