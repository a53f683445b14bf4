"""The HTTP endpoints. Every body in and out is JSON, except the Prometheus text of /metrics.

Errors are ``{"error": {"code": ..., "message": ...}}`` with these statuses:
400 malformed JSON (also NaN/Infinity literals and nesting deeper than 32) / not an object / unknown or missing field / bad ``hours``,
401 no or wrong bearer token, 404 no such endpoint, 405 wrong method,
409 the extension would pass the hard limit, or the shutdown is already decided,
422 an Idempotency-Key reused for a different number of hours,
413 body larger than 4 KiB, 415 a Content-Type other than application/json,
500 an internal error (details only in the daemon's log).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Iterable

import falcon

from soong_daemon import operations, rules
from soong_daemon.bootlog import BootLog
from soong_daemon.clock import Clock, iso
from soong_daemon.config import DaemonConfig
from soong_daemon.prometheus import CONTENT_TYPE
from soong_daemon.state import StateStore
from soong_daemon.status import StatusView, metrics_text

MAX_BODY_BYTES = 4096
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ApiProblem(falcon.HTTPError):
    """An HTTP error with a stable machine code, a one-line message and optional extra fields."""

    def __init__(self, status: str, code: str, message: str, **extra: Any) -> None:
        super().__init__(status, title=code, description=message)
        self.extra = extra


MAX_JSON_DEPTH = 32


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _too_deep(raw: bytes) -> bool:
    """Whether brackets nest deeper than MAX_JSON_DEPTH (counted outside strings, before parsing)."""
    depth, in_string, escaped = 0, False, False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def read_json(req: falcon.Request, *, allowed: Iterable[str] = (), required: Iterable[str] = (),
              allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object, checked for size, type and fields (raises ApiProblem)."""
    length = req.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise ApiProblem(falcon.HTTP_413, "body_too_large", f"the body must be at most {MAX_BODY_BYTES} bytes")
    content_type = (req.content_type or "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json":
        raise ApiProblem(falcon.HTTP_415, "unsupported_media_type", "send the body with Content-Type: application/json")
    raw = req.bounded_stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiProblem(falcon.HTTP_413, "body_too_large", f"the body must be at most {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiProblem(falcon.HTTP_400, "malformed_json", "a JSON object body is required")
    if _too_deep(raw):
        raise ApiProblem(falcon.HTTP_400, "malformed_json", f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiProblem(falcon.HTTP_400, "malformed_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiProblem(falcon.HTTP_400, "malformed_json", "the body must be a JSON object")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        # repr-style quoting keeps a client's field name on one line (a name may hold a newline)
        raise ApiProblem(falcon.HTTP_400, "unknown_field", f"unknown field {json.dumps(unknown[0])[:80]}")
    missing = sorted(set(required) - set(data))
    if missing:
        raise ApiProblem(falcon.HTTP_400, "missing_field", f"field '{missing[0]}' is required")
    return data


def _shutdown_underway(state: dict) -> ApiProblem:
    return ApiProblem(falcon.HTTP_409, "shutdown_underway",
                      f"the shutdown is already decided ({state['shutdown']['reason']}); the lease can no longer change")


class _Base:
    def __init__(self, config: DaemonConfig, clock: Clock, store: StateStore) -> None:
        self.config = config
        self.clock = clock
        self.store = store


class HealthResource:
    """``GET /health``: liveness only, no token, reveals nothing."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Answer that the web process is up."""
        resp.media = {"status": "ok"}


class StatusResource(_Base):
    """``GET /status``: lease, limits, idleness, activity, boot progress and termination state."""

    def __init__(self, config: DaemonConfig, clock: Clock, store: StateStore, boot_log: BootLog) -> None:
        super().__init__(config, clock, store)
        self.boot_log = boot_log
        self.view = StatusView(config)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The status document."""
        resp.data = self.view.body(self.store.read(), self.boot_log.summary(), self.clock.now(), time.time())
        resp.content_type = falcon.MEDIA_JSON


class ExtendResource(_Base):
    """``POST /extend {"hours": h}``: add to the lease, never past the hard limit.

    An ``Idempotency-Key`` header makes a retry safe: the key and its answer are
    kept in the state (so across restarts too), and the same key again gets the
    first answer (with ``Idempotent-Replayed: true``) without adding anything.
    """

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Grant the extension, replay an earlier grant with the same key, or refuse it."""
        key = req.get_header("Idempotency-Key")
        if key is not None and not IDEMPOTENCY_KEY.match(key):
            raise ApiProblem(falcon.HTTP_400, "invalid_idempotency_key",
                             "Idempotency-Key must be 1 to 128 characters of A-Z a-z 0-9 . _ : -")
        body = read_json(req, allowed=("hours",), required=("hours",))
        try:
            hours = rules.parse_hours(body["hours"])
        except ValueError as exc:
            raise ApiProblem(falcon.HTTP_400, "invalid_hours", str(exc)) from None
        with self.store.transaction() as state:
            if key is not None:
                try:
                    replay = operations.replayed_extension(state, key, hours)
                except operations.IdempotencyKeyReused as exc:
                    raise ApiProblem(falcon.HTTP_422, "idempotency_key_reused", str(exc)) from None
                if replay is not None:
                    resp.set_header("Idempotent-Replayed", "true")
                    resp.media = replay
                    return
            now = self.clock.now()
            try:
                new_end = operations.grant_extension(state, now, hours, self.config)
            except operations.ShutdownUnderway:
                raise _shutdown_underway(state) from None
            except rules.ExtensionRefused as exc:
                raise ApiProblem(falcon.HTTP_409, "past_hard_limit", str(exc), max_hours=round(exc.max_hours, 4),
                                 hard_limit_at=iso(operations.limits(state, self.config).hard_limit_at)) from None
            limits = operations.limits(state, self.config)
            answer = {"lease_end": iso(new_end), "lease_seconds_left": round(max(0.0, new_end - now), 1),
                      "granted_hours": hours, "granted_hours_total": state["granted_hours"],
                      "hard_limit_at": iso(limits.hard_limit_at)}
            if key is not None:
                operations.remember_extension(state, key, hours, answer)
        resp.media = answer


class ActivityResource(_Base):
    """``POST /activity``: an explicit keep-alive (for batch jobs); the body is empty or ``{}``."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Record the keep-alive."""
        read_json(req, allow_empty=True)
        with self.store.transaction() as state:
            if state.get("shutdown"):
                raise _shutdown_underway(state)
            now = self.clock.now()
            operations.record_activity(state, now, "api")
            limits = operations.limits(state, self.config)
        resp.media = {"last_activity_at": iso(now), "idle_deadline": iso(limits.idle_since + limits.idle_timeout),
                      "lease_end": iso(limits.lease_end)}


class ShutdownResource(_Base):
    """``POST /shutdown``: terminate now. Answers 202; the enforcer terminates through the API."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Record the shutdown request (idempotent: a second request reports the first decision)."""
        read_json(req, allow_empty=True)
        with self.store.transaction() as state:
            operations.decide_shutdown(state, self.clock.now(), rules.REQUESTED, "requested through POST /shutdown")
            shutdown = dict(state["shutdown"])
        resp.status = falcon.HTTP_202
        resp.media = {"shutdown": {"reason": shutdown["reason"], "decided_at": iso(shutdown["decided_at"]),
                                   "detail": shutdown.get("detail")},
                      "message": "the instance is being terminated through the provider API"}


class MetricsResource(_Base):
    """``GET /metrics``: Prometheus text."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The metrics page."""
        resp.text = metrics_text(self.store.read(), self.config, self.clock.now())
        resp.content_type = CONTENT_TYPE
