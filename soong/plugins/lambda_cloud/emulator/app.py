"""The emulator as one WSGI application: rate limits, auth and faults around the API.

Per API request, in order: the request is logged; the general (and, for launch,
the launch) rate limit is checked (429 with ``Retry-After``); the API key is
checked (401); an inactive account gets 403; then a fault rule may fire; then
the Falcon API handles it. ``/_emulator/...`` is the admin API and bypasses all
of that.
"""

from __future__ import annotations

import base64
import hmac
import json
import socket
import threading
import time
from typing import Any, Callable, Iterable

from soong.plugins.lambda_cloud.emulator import errors as E
from soong.plugins.lambda_cloud.emulator.admin import ADMIN_PREFIX, create_admin
from soong.plugins.lambda_cloud.emulator.api import PREFIX, create_api
from soong.plugins.lambda_cloud.emulator.clock import EmulatorClock
from soong.plugins.lambda_cloud.emulator.config import EmulatorConfig
from soong.plugins.lambda_cloud.emulator.faults import FaultAction, FaultPlan
from soong.plugins.lambda_cloud.emulator.limits import SlidingWindow
from soong.plugins.lambda_cloud.emulator.reqlog import RequestLog
from soong.plugins.lambda_cloud.emulator.seed import load_seed
from soong.plugins.lambda_cloud.emulator.state import EmulatorState

#: WSGI environ key under which a server may put the client socket (so faults can drop it).
SOCKET_KEYS = ("gunicorn.socket", "soong.emulator.socket")
LAUNCH_PATH = "/instance-operations/launch"

_GATEWAY_PAGE = (
    "<html><head><title>{status} {reason}</title></head><body><center><h1>{status} {reason}</h1></center>"
    "<hr><center>cloudflare</center></body></html>"
)
_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}

StartResponse = Callable[..., Any]


class Emulator:
    """A Lambda Cloud API emulator: state, faults, limits and the request log, as a WSGI callable.

    :param config: settings (see :class:`~.config.EmulatorConfig`).
    :param seed: seed data (see :mod:`.seed`); default: the sample instance types and images.
    :param clock: emulated clock for instance lifecycles (tests inject a frozen one).
    :param rate_clock: real monotonic clock for rate limits and log times.
    :param sleep: how latency faults wait.
    """

    def __init__(self, config: EmulatorConfig | None = None, seed: dict[str, Any] | None = None,
                 clock: EmulatorClock | None = None, rate_clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config or EmulatorConfig()
        self.clock = clock or EmulatorClock()
        self.state = EmulatorState(self.config, self.clock, seed if seed is not None else load_seed())
        self.faults = FaultPlan(self.config.random_seed)
        self.log = RequestLog(self.config.max_log_entries)
        self.rate_clock = rate_clock
        self.sleep = sleep
        self.t0 = rate_clock()
        self._general = SlidingWindow()
        self._launch = SlidingWindow()
        self._gate = threading.Lock()
        self.api = create_api(self.state)
        self.admin = create_admin(self)

    def reset(self) -> None:
        """Back to the seed; forget faults, the log and rate-limit history."""
        self.state.reset()
        self.faults.clear()
        self.faults.reseed(self.config.random_seed)
        self.log.clear()
        with self._gate:
            self._general.reset()
            self._launch.reset()

    # -- WSGI ---------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            if self.config.admin_token and not hmac.compare_digest(
                    environ.get("HTTP_X_EMULATOR_TOKEN", ""), self.config.admin_token):
                return self._send(start_response, 403, {"error": "admin token required"})
            return self.admin(environ, start_response)
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            return self._send(start_response, 404, E.EmulatedError(404, "global/object-does-not-exist", "Not found.").body())
        return self._api_call(environ, start_response, path[len(PREFIX):] or "/")

    def _api_call(self, environ: dict[str, Any], start_response: StartResponse, rel: str) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        launch = method == "POST" and rel.rstrip("/") == LAUNCH_PATH
        arrived = self.rate_clock()
        entry: dict[str, Any] = {
            "t": arrived - self.t0, "at": self.clock.now(), "method": method, "path": rel,
            "query": environ.get("QUERY_STRING", ""), "launch": launch, "status": None, "code": None,
            "rate_limited": False, "fault": None, "instance_ids": [],
        }
        try:
            error = self._admit(entry, launch, arrived) or self._authenticate(environ)
            if error is not None:
                if entry["rate_limited"] and self.config.rate_limit_style == "cloudflare":
                    return self._finish_text(entry, start_response, 429, "error code: 1015", "text/plain", error.headers)
                return self._finish(entry, start_response, error.status, error.body(), error.headers)
            fault = self.faults.pick(method, rel.rstrip("/") or "/")
            if fault is not None:
                entry["fault"] = fault.action
                return self._apply_fault(fault, entry, environ, start_response)
            status, headers, body = self._call_api(environ)
            return self._finish_raw(entry, start_response, status, headers, body)
        finally:
            self.log.add(entry)

    def _admit(self, entry: dict[str, Any], launch: bool, now: float) -> E.EmulatedError | None:
        """Rate limits at arrival time ``now``: None if admitted (and counted), else the 429 to send."""
        cfg = self.config
        with self._gate:
            wait = self._general.check(cfg.general_limit, now)
            rule = cfg.general_limit
            if wait is None and launch:
                wait = self._launch.check(cfg.launch_limit, now)
                rule = cfg.launch_limit
            if wait is None:
                self._general.record(now)
                if launch:
                    self._launch.record(now)
                return None
        entry["rate_limited"] = True
        return E.rate_limited(wait, whole=rule.period >= 1.0)

    def _authenticate(self, environ: dict[str, Any]) -> E.EmulatedError | None:
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, value = header.partition(" ")
        key = None
        if scheme.lower() == "bearer":
            key = value.strip()
        elif scheme.lower() == "basic":
            value = value.strip()
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
                key = decoded[:-1] if decoded.endswith(":") else decoded
            except ValueError:
                key = value[:-1] if value.endswith(":") else value
        if not key or not hmac.compare_digest(key.encode(), self.config.api_key.encode()):
            return E.unauthorized()
        if self.config.account_status == "inactive":
            return E.account_inactive()
        return None

    def _call_api(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        captured: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return lambda chunk: None

        result = self.api(environ, start)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return int(captured["status"].split()[0]), captured["headers"], body

    # -- faults ----------------------------------------------------------------------------------
    def _apply_fault(self, fault: FaultAction, entry: dict[str, Any], environ: dict[str, Any],
                     start_response: StartResponse) -> Iterable[bytes]:
        if fault.action == "latency":
            self.sleep(fault.delay)
            status, headers, body = self._call_api(environ)
            return self._finish_raw(entry, start_response, status, headers, body)
        if fault.action == "error":
            if fault.delay:
                self.sleep(fault.delay)
            return self._fault_error(fault, entry, start_response, default_status=503)
        if fault.action == "drop":
            if fault.delay:
                self.sleep(fault.delay)
            return self._drop(entry, environ, start_response)
        # ambiguous: do the work, then fail the answer
        status, headers, body = self._call_api(environ)
        self._note_response(entry, status, headers, body)
        if fault.then == "drop":
            return self._drop(entry, environ, start_response)
        if fault.then == "error":
            return self._fault_error(fault, entry, start_response, default_status=502)
        self.sleep(fault.delay)
        return self._finish_raw(entry, start_response, status, headers, body)

    def _fault_error(self, fault: FaultAction, entry: dict[str, Any], start_response: StartResponse,
                     default_status: int) -> Iterable[bytes]:
        status = fault.status or (503 if fault.code and fault.code.startswith("provider/") else default_status)
        if status == 429 and not fault.code:
            error = E.rate_limited(fault.retry_after if fault.retry_after is not None else 1.0,
                                   whole=fault.retry_after is None or fault.retry_after >= 1)
            if fault.body != "text":
                return self._finish(entry, start_response, 429, error.body(), error.headers)
            return self._finish_text(entry, start_response, 429, "error code: 1015", "text/plain", error.headers)
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = E.retry_after_value(fault.retry_after, whole=fault.retry_after >= 1)
        body_kind = fault.body or ("json" if (fault.code or status == 500) else "html")
        if body_kind == "json":
            if fault.code and fault.code.startswith("provider/"):
                error = E.provider_error(fault.code, status)
            elif fault.code:
                error = E.EmulatedError(status, fault.code, fault.message or "Injected error.", "Try again later.")
            else:
                error = E.internal_error()
                error.status = status
            if fault.message:
                error.message = fault.message
            return self._finish(entry, start_response, status, error.body(), headers)
        reason = _REASONS.get(status, "Error")
        if body_kind == "html":
            page = _GATEWAY_PAGE.format(status=status, reason=reason)
            return self._finish_text(entry, start_response, status, page, "text/html", headers)
        return self._finish_text(entry, start_response, status, fault.message or reason, "text/plain", headers)

    def _drop(self, entry: dict[str, Any], environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        entry["status"] = None
        entry["dropped"] = True
        sock = next((environ[k] for k in SOCKET_KEYS if k in environ), None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        start_response("502 Bad Gateway", [("Content-Length", "0")])
        return []

    # -- responses -----------------------------------------------------------------------------
    def _note_response(self, entry: dict[str, Any], status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        entry["status"] = status
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = body.decode("utf-8", "replace")
        if isinstance(parsed, dict):
            error = parsed.get("error")
            if isinstance(error, dict):
                entry["code"] = error.get("code")
            data = parsed.get("data")
            if entry["launch"] and status == 200 and isinstance(data, dict):
                entry["instance_ids"] = list(data.get("instance_ids", []))
        if self.config.record_bodies:
            entry["response"] = parsed
            entry["content_type"] = dict((k.lower(), v) for k, v in headers).get("content-type")

    def _finish_raw(self, entry: dict[str, Any], start_response: StartResponse, status: int,
                    headers: list[tuple[str, str]], body: bytes) -> Iterable[bytes]:
        self._note_response(entry, status, headers, body)
        reason = _REASONS.get(status) or _status_reason(status)
        start_response(f"{status} {reason}", headers)
        return [body]

    def _finish(self, entry: dict[str, Any], start_response: StartResponse, status: int, payload: Any,
                headers: dict[str, str] | None = None) -> Iterable[bytes]:
        body = json.dumps(payload).encode()
        all_headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        all_headers += list((headers or {}).items())
        return self._finish_raw(entry, start_response, status, all_headers, body)

    def _finish_text(self, entry: dict[str, Any], start_response: StartResponse, status: int, text: str,
                     content_type: str, headers: dict[str, str] | None = None) -> Iterable[bytes]:
        body = text.encode()
        all_headers = [("Content-Type", f"{content_type}; charset=utf-8"), ("Content-Length", str(len(body)))]
        all_headers += list((headers or {}).items())
        return self._finish_raw(entry, start_response, status, all_headers, body)

    @staticmethod
    def _send(start_response: StartResponse, status: int, payload: Any) -> Iterable[bytes]:
        body = json.dumps(payload).encode()
        start_response(f"{status} {_status_reason(status)}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def _status_reason(status: int) -> str:
    import http

    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def create_app(config: EmulatorConfig | None = None, *, seed: dict[str, Any] | None = None,
               clock: EmulatorClock | None = None, **options: Any) -> Emulator:
    """Build the emulator WSGI app (an :class:`Emulator`; serve it with gunicorn or any WSGI server).

    ``options`` are :class:`~.config.EmulatorConfig` fields, applied on top of ``config``.
    """
    config = config or EmulatorConfig()
    if options:
        for key, value in options.items():
            if not hasattr(config, key):
                raise TypeError(f"unknown emulator option {key!r}")
            setattr(config, key, value)
    return Emulator(config, seed=seed, clock=clock)
