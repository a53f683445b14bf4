"""The command side of the status daemon's HTTP API, reached through a tunnel backend.

The daemon listens on the instance's loopback interface only
(``status_daemon.port``); :func:`connect` reaches it through the configured
tunnel backend: an already running persistent tunnel of that instance when its
status port answers, otherwise a short-lived foreground tunnel for the
duration of a ``with`` block. Every call has short timeouts, carries the
``daemon_token`` secret as a bearer token, and maps failures to soong errors:

* no connection, a timeout, a 5xx: :class:`~soong.core.errors.UnreachableError` (exit 6);
* 401: :class:`DaemonAuthError` (exit 4): the keyring's token is not the instance's;
* 409 (a refused extension, a shutdown already decided), 400 and 422:
  :class:`DaemonRefusedError` (exit 5) carrying the daemon's reason.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

from soong.core.errors import EXIT_API, SecretError, SoongError, UnreachableError

#: (connect, read) timeouts in seconds of one daemon call.
DEFAULT_TIMEOUT = (2.0, 4.0)
#: Attempts of one ``extend`` (all with the same idempotency key) when no answer comes back.
EXTEND_ATTEMPTS = 3


class DaemonRefusedError(SoongError):
    """The daemon understood the request and refused it; ``reason`` is its own words."""

    exit_code = EXIT_API

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.details = dict(details or {})


class DaemonAuthError(SecretError):
    """The daemon refused soong's token (HTTP 401)."""


class DaemonClient:
    """Calls to one daemon at ``base_url`` (``http://host:port``) with ``token``.

    :param timeout: ``(connect, read)`` seconds for every call.
    :param label: how the daemon is named in error messages (usually the instance id).
    """

    def __init__(self, base_url: str, token: str, *, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 label: str = "the instance") -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.label = label
        self._token = token
        self.retry_pause = 1.0
        self._session = requests.Session()
        self._session.trust_env = False  # a proxy from the environment must never see loopback traffic

    def close(self) -> None:
        """Release the HTTP connection."""
        self._session.close()

    def __enter__(self) -> "DaemonClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- endpoints --------------------------------------------------------------------------
    def health(self) -> bool:
        """True when ``GET /health`` answers 200 (no token needed); False on anything else."""
        try:
            self._request("GET", "/health", auth=False)
        except SoongError:
            return False
        return True

    def status(self) -> dict[str, Any]:
        """``GET /status``: lease, limits, idleness, boot phase, shutdown state (see docs/daemon.md)."""
        return self._request("GET", "/status")

    def extend(self, hours: float, *, key: str | None = None, attempts: int = EXTEND_ATTEMPTS) -> dict[str, Any]:
        """``POST /extend``: add ``hours`` to the lease; :class:`DaemonRefusedError` past the hard limit.

        The call carries an ``Idempotency-Key`` (a fresh random one unless ``key``
        is given) and is retried with the same key, up to ``attempts`` times in
        all, when no answer came (no connection, a timeout, a 5xx): the daemon
        grants a key once and answers a repeat with the first answer, so an
        answer lost on the way back never adds the hours twice (docs/daemon.md).
        """
        import time
        import uuid

        key = key or uuid.uuid4().hex
        for attempt in range(1, max(1, attempts) + 1):
            try:
                return self._request("POST", "/extend", {"hours": hours}, headers={"Idempotency-Key": key})
            except UnreachableError:
                if attempt >= attempts:
                    raise
                time.sleep(self.retry_pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def activity(self) -> dict[str, Any]:
        """``POST /activity``: an explicit keep-alive."""
        return self._request("POST", "/activity", {})

    def shutdown(self) -> dict[str, Any]:
        """``POST /shutdown``: ask the daemon to terminate its instance now."""
        return self._request("POST", "/shutdown", {})

    # -- plumbing ---------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None, *, auth: bool = True,
                 headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        import requests

        headers = {"Accept": "application/json", **(headers or {})}
        if auth:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = self._session.request(method, self.base_url + path, json=body, headers=headers,
                                             timeout=self.timeout)
        except requests.Timeout:
            raise UnreachableError(f"the status daemon of {self.label} did not answer in time") from None
        except requests.RequestException as exc:
            raise UnreachableError(f"the status daemon of {self.label} cannot be reached "
                                   f"({type(exc).__name__})") from None
        return self._answer(response)

    def _answer(self, response: Any) -> dict[str, Any]:
        status = response.status_code
        try:
            data = response.json()
        except ValueError:
            data = None
        if status < 300:
            if not isinstance(data, dict):
                raise SoongError(f"the status daemon of {self.label} sent an answer soong cannot read")
            return data
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        message = str(error.get("message") or f"HTTP {status}")
        code = error.get("code")
        if status == 401:
            raise DaemonAuthError(
                f"the status daemon of {self.label} refused soong's token",
                hint="the daemon_token in this profile's keyring is not the one the instance was launched with")
        if status in (400, 409, 413, 415, 422):
            details = {k: v for k, v in error.items() if k not in ("message", "code")}
            raise DaemonRefusedError(f"the status daemon refused: {message}", code=code, status=status, details=details)
        if status >= 500:
            raise UnreachableError(f"the status daemon of {self.label} failed ({message})")
        raise SoongError(f"the status daemon of {self.label} answered HTTP {status}: {message}")


def _live_tunnel_endpoint(context: Any, instance_id: str, backend_name: str) -> tuple[str, int] | None:
    """The status forward of a persistent tunnel of this backend whose port answers now, if any."""
    from soong.core.local_ports import port_answers
    from soong.core.tunnel_state import TunnelStore

    try:
        stored = TunnelStore(context.paths.state_dir).load(instance_id)
    except (OSError, ValueError, SoongError):
        return None
    if stored is None or stored.backend != backend_name or getattr(stored, "state", "up") != "up":
        return None
    for forward in stored.forwards:
        if forward.name == "status" and port_answers(forward.local_port, forward.local_host, timeout=0.5):
            return forward.local_host, forward.local_port
    return None


@contextlib.contextmanager
def connect(context: Any, instance: Any, *, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
            backend: Any = None, token: str | None = None) -> Iterator[DaemonClient]:
    """A :class:`DaemonClient` for ``instance``'s daemon, reached through the tunnel backend.

    Raises :class:`~soong.core.errors.UnreachableError` when the instance has no
    address yet or the tunnel cannot be opened, and
    :class:`~soong.core.errors.SecretError` when no daemon token is set.
    """
    from soong.core.tunnel_state import target_for
    from soong.core.types import Forward

    if not instance.ip:
        raise UnreachableError(f"instance {instance.id} has no address yet (status {instance.status})")
    token = token or context.secrets.require("daemon_token")
    backend = backend or context.tunnel_backend()
    label = f"instance {instance.id}"
    endpoint = _live_tunnel_endpoint(context, instance.id, backend.name)
    if endpoint is not None:
        with DaemonClient(f"http://{_host(endpoint[0])}:{endpoint[1]}", token, timeout=timeout, label=label) as client:
            yield client
        return
    remote_port = int(context.config.get("status_daemon.port"))
    target = target_for(context, instance)
    try:
        opened = backend.open(target, [Forward("status", 0, remote_port)])
        forwards = opened.__enter__()
    except SoongError as exc:
        raise UnreachableError(f"cannot reach the status daemon of {label}: {exc}") from None
    except OSError as exc:
        raise UnreachableError(f"cannot reach the status daemon of {label}: {exc.strerror or exc}") from None
    try:
        forward = forwards[0]
        with DaemonClient(f"http://{_host(forward.local_host)}:{forward.local_port}", token, timeout=timeout,
                          label=label) as client:
            yield client
    finally:
        opened.__exit__(None, None, None)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
