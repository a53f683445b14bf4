"""Choosing local ports for tunnels, and saying clearly when one is taken."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from soong.core.errors import UsageError

#: How far past a default port :func:`next_free_port` looks.
SCAN_WIDTH = 100


class PortInUseError(UsageError):
    """A local port a tunnel needs is held by another process."""

    def __init__(self, port: int, what: str | None = None, *, hint: str | None = None) -> None:
        label = f"local port {port}" + (f" ({what})" if what else "")
        holder = who_listens(port)
        by = f" by {holder}" if holder else " by another process"
        super().__init__(f"{label} is already in use{by}", hint=hint)
        self.port = port
        self.what = what


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a listener could bind ``host:port`` now (with SO_REUSEADDR, as ssh does).

    Only a snapshot: whoever binds later must still handle losing the race.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def next_free_port(start: int, *, avoid: set[int] | frozenset[int] = frozenset(), host: str = "127.0.0.1") -> int:
    """The first port from ``start`` upward that is free and not in ``avoid``.

    Raises :class:`PortInUseError` naming ``start`` if none of the next
    :data:`SCAN_WIDTH` ports is free.
    """
    for port in range(start, min(start + SCAN_WIDTH, 65536)):
        if port not in avoid and port_is_free(port, host):
            return port
    raise PortInUseError(start, hint=f"and so are the next {SCAN_WIDTH - 1} ports")


def any_free_port(*, avoid: set[int] | frozenset[int] = frozenset(), host: str = "127.0.0.1") -> int:
    """A port the system hands out as free (not in ``avoid``)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in avoid:
            return port


def port_answers(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Whether something accepts a TCP connection on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def who_listens(port: int) -> str | None:
    """Best effort: ``pid N (name)`` of the process listening on TCP ``port`` (Linux only), else None."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    proc = Path("/proc")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    name = (entry / "comm").read_text().strip()
                    return f"pid {entry.name} ({name})"
        except OSError:
            continue
    return None


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes
