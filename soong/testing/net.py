"""Small network helpers for tests and the sandbox."""

from __future__ import annotations

import socket
import time


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free on ``host`` a moment ago (callers must still handle a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0) -> None:
    """Wait until something accepts connections on ``host:port``; raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:g}s") from None
            time.sleep(0.05)


def default_sigint() -> None:
    """A ``preexec_fn`` that gives a child the default Ctrl-C behaviour.

    A process started in the background by a non-interactive shell (as CI runners
    and ``cmd &`` do) inherits SIGINT *ignored*, and Python then never raises
    KeyboardInterrupt; tests that send SIGINT to a child must undo that.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
