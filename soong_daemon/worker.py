"""gunicorn's sync worker with a deadline for reading each request, so slow clients cannot hold the API.

gunicorn 27.0.1's ``SyncWorker.accept`` puts the client socket in blocking mode
with no timeout (``client.setblocking(1)``, gunicorn/workers/sync.py lines 26-30
of the 27.0.1 wheel; the same in benoitc/gunicorn master) and then parses the
request in ``handle``. The only bound is the master's ``timeout``: a worker that
has not called ``notify()`` for ``timeout`` seconds is sent SIGABRT, then
SIGKILL (``Arbiter.murder_workers``, gunicorn/arbiter.py lines 603-622). So a
client that sends its headers or body a byte at a time, or never finishes,
holds a sync worker for the full 30 s, and two such clients hold both workers.
``keepalive`` does not apply (the sync worker forces every connection closed
after one request) and ``graceful_timeout`` only bounds a shutdown.

This worker gives every connection ``request_timeout_seconds`` (wall clock,
SIGALRM through ``setitimer``; gunicorn's workers leave SIGALRM alone, see
``Worker.init_signals`` in gunicorn/workers/base.py) to deliver its request
line, headers and body (bodies are at most a few KiB). Past it the client gets
408 and the socket is closed at once (not drained). The body is read in full
before the application runs and the timer is off while it runs, so the
deadline never interrupts a state transaction.
"""

from __future__ import annotations

import io
import signal
from typing import Any

from gunicorn import util
from gunicorn.http.body import Body
from gunicorn.workers.sync import SyncWorker

from soong_daemon.config import FIELDS
from soong_daemon.resources import MAX_BODY_BYTES

DEFAULT_REQUEST_DEADLINE = FIELDS["request_timeout_seconds"][1]


class RequestDeadline(Exception):
    """The client did not deliver its request in time."""


def _expired(signum: int, frame: Any) -> None:
    raise RequestDeadline("the request was not received in time")


def _disarm() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)


class DeadlineSyncWorker(SyncWorker):
    """A sync worker that drops a connection whose request does not arrive within the deadline."""

    def init_signals(self) -> None:
        """gunicorn's worker signals, plus SIGALRM for the request deadline."""
        super().init_signals()
        signal.signal(signal.SIGALRM, _expired)

    @property
    def request_deadline(self) -> float:
        """Seconds a client has to deliver one whole request (the daemon config's, else the default)."""
        config = getattr(self.app, "daemon_config", None)
        return float(config.request_timeout_seconds if config is not None else DEFAULT_REQUEST_DEADLINE)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        """Serve one connection with the read deadline armed."""
        signal.setitimer(signal.ITIMER_REAL, self.request_deadline)
        try:
            super().handle(listener, client, addr)
        except RequestDeadline:  # fired after gunicorn's own handlers (e.g. while closing)
            client.close()
        finally:
            _disarm()

    def handle_request(self, listener: Any, req: Any, client: Any, addr: Any) -> Any:
        """Read the (bounded) body under the deadline, then run the application without it."""
        data = req.body.read(MAX_BODY_BYTES + 1)  # one byte more, so the application still sees "too large"
        req.body = Body(io.BytesIO(data))
        _disarm()
        return super().handle_request(listener, req, client, addr)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """A missed deadline: one warning, a best-effort 408 and an immediate close; else gunicorn's handling."""
        if not isinstance(exc, RequestDeadline):
            super().handle_error(req, client, addr, exc)
            return
        _disarm()
        self.log.warning("dropped a client that did not send its request within %.1f s (%s)",
                         self.request_deadline, addr[0] if addr else "?")
        try:
            client.settimeout(0.5)
            util.write_error(client, 408, "Request Timeout", "the request was not received in time")
        except OSError:
            pass
        client.close()
