"""Loopback addresses and ports for the sandbox: is one free, and wait until one answers."""

from __future__ import annotations

import ipaddress
import socket
import time

from soong.sandbox.errors import PortInUseError, SandboxError


def require_loopback(host: str) -> str:
    """``host`` if it is a loopback IPv4 address; SandboxError otherwise (the sandbox never binds elsewhere)."""
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise SandboxError(f"{host!r} is not an IPv4 address; the sandbox binds only loopback addresses") from None
    if not address.is_loopback:
        raise SandboxError(f"{host} is not a loopback address (127.0.0.0/8); the sandbox binds only loopback addresses")
    return host


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free on ``host`` a moment ago (the caller must still handle losing a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (a socket in TIME_WAIT does not count as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def ensure_free(host: str, port: int, what: str) -> None:
    """Raise :class:`PortInUseError` naming ``host:port`` and ``what`` needs it, unless it is free."""
    if not port_is_free(host, port):
        raise PortInUseError(f"{host}:{port} is already in use by another program; the sandbox needs it for {what}",
                             hint="stop that program, or 'soong sandbox down' and up again to get other addresses")


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 1.0, headers: dict[str, str] | None = None) -> bool:
    """Whether ``GET url`` answers 2xx within ``timeout`` (no proxy)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/", headers=headers or {})
        return 200 <= conn.getresponse().status < 300
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_until(check, timeout: float, interval: float = 0.05) -> bool:
    """Call ``check()`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
