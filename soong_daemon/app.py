"""The Falcon WSGI app: ``create_app(config, ...)`` with every collaborator injectable."""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Any, Sequence

import falcon

from soong_daemon import operations
from soong_daemon.activity import ActivitySource
from soong_daemon.bootlog import BootLog
from soong_daemon.clock import Clock
from soong_daemon.components import Components, build_components
from soong_daemon.config import DaemonConfig
from soong_daemon.enforcer import Enforcer
from soong_daemon.notify import Notifier
from soong_daemon.resources import (
    ActivityResource,
    ApiProblem,
    ExtendResource,
    HealthResource,
    MetricsResource,
    ShutdownResource,
    StatusResource,
)
from soong_daemon.secretfile import read_secret
from soong_daemon.state import StateStore
from soong_daemon.terminator import Terminator

log = logging.getLogger("soong_daemon.app")

UNAUTHENTICATED = frozenset({"/health"})
_CODE = re.compile(r"^[a-z_]+$")
_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
                 409: "conflict", 411: "length_required", 413: "body_too_large", 415: "unsupported_media_type", 422: "unprocessable",
                 500: "internal_error"}


class BearerAuth:
    """Falcon middleware: every path but /health needs ``Authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self._token = token.encode("utf-8")

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Refuse the request with 401 unless it carries the token (constant-time comparison)."""
        if req.path in UNAUTHENTICATED:
            return
        scheme, _, given = (req.get_header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), self._token):
            raise ApiProblem(falcon.HTTP_401, "unauthorized", "a valid bearer token is required")


def serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Every error as ``{"error": {"code", "message", ...}}``."""
    code = exc.title if exc.title and _CODE.match(exc.title) else _STATUS_CODES.get(exc.status_code, "error")
    body = {"code": code, "message": exc.description or exc.title or "error"}
    body.update(getattr(exc, "extra", {}) or {})
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps({"error": body})
    if exc.status_code == 401:
        resp.set_header("WWW-Authenticate", 'Bearer realm="soong-daemon"')


def _internal_error(req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict) -> None:
    log.exception("internal error handling %s %s", req.method, req.path)
    raise ApiProblem(falcon.HTTP_500, "internal_error", "internal error; see the daemon log")


class DaemonApp(falcon.App):
    """The Falcon app plus the parts it was built from and an (unstarted) Enforcer over them."""

    parts: Components
    enforcer: Enforcer


def create_app(config: DaemonConfig, *, clock: Clock | None = None, store: StateStore | None = None,
               terminator: Terminator | None = None, activity_sources: Sequence[ActivitySource] | None = None,
               notifier: Notifier | None = None, token: str | None = None, **parts: Any) -> DaemonApp:
    """The daemon's WSGI app.

    Anything not given is built from ``config`` (the token is read from
    ``token_file``). The returned app carries ``app.parts`` (the components) and
    ``app.enforcer``, an Enforcer over the same parts that is NOT started here:
    in production the loop runs only in the enforcer process; tests call
    ``app.enforcer.tick()`` directly.
    """
    components: Components = build_components(config, clock=clock, store=store, terminator=terminator,
                                              activity_sources=activity_sources, notifier=notifier, **parts)
    if token is None:
        token = read_secret(config.token_file, "token_file")
    with components.store.transaction() as state:  # the first start fixes the lease; a lower hard limit sticks
        operations.tighten_hard_limit(state, config)
    app = DaemonApp(middleware=[BearerAuth(token)])
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, _internal_error)
    app.req_options.strip_url_path_trailing_slash = True
    common = (config, components.clock, components.store)
    app.add_route("/health", HealthResource())
    app.add_route("/status", StatusResource(*common, BootLog(config.boot_log)))
    app.add_route("/extend", ExtendResource(*common))
    app.add_route("/activity", ActivityResource(*common))
    app.add_route("/shutdown", ShutdownResource(*common))
    app.add_route("/metrics", MetricsResource(*common))
    app.parts = components
    app.enforcer = Enforcer(components)
    return app
