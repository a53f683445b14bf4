"""The test-control API under ``/_emulator`` (not part of Lambda's API; see docs/lambda.md).

Plain JSON in and out, no envelope. Errors are ``{"error": "..."}`` with 400 or 404.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import falcon

if TYPE_CHECKING:
    from soong.plugins.lambda_cloud.emulator.app import Emulator

ADMIN_PREFIX = "/_emulator"


def _body(req: falcon.Request) -> Any:
    raw = req.bounded_stream.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise falcon.HTTPBadRequest(title="body is not JSON") from None


class _Resource:
    def __init__(self, emulator: "Emulator") -> None:
        self.emu = emulator


class Health(_Resource):
    """``GET /_emulator/health``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"ok": True}


class Config(_Resource):
    """``GET``/``PATCH /_emulator/config``: delays, rate limits, quota, account status."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.emu.config.public()

    def on_patch(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        if not isinstance(body, dict):
            raise falcon.HTTPBadRequest(title="expected an object of settings")
        with self.emu.state.lock:
            self.emu.config.update(body)
        if "random_seed" in body:
            self.emu.faults.reseed(body["random_seed"])
        resp.media = self.emu.config.public()


class Capacity(_Resource):
    """``GET``/``PUT /_emulator/capacity``: launchable count per type and region."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.emu.state.capacity_table()

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        entries = body.get("entries", [body]) if isinstance(body, dict) else body
        if not isinstance(entries, list):
            raise falcon.HTTPBadRequest(title="expected {instance_type, region, count} or a list of them")
        for entry in entries:
            if not isinstance(entry, dict) or "instance_type" not in entry or "region" not in entry:
                raise falcon.HTTPBadRequest(title="each entry needs instance_type, region and count")
            self.emu.state.set_capacity(entry["instance_type"], entry["region"], entry.get("count"))
        resp.media = self.emu.state.capacity_table()


class Faults(_Resource):
    """``GET``/``POST``/``DELETE /_emulator/faults``: the fault rules."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.emu.faults.rules()

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        rules = body if isinstance(body, list) else [body]
        added = [self.emu.faults.add(rule).to_dict() for rule in rules]
        resp.media = added

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.emu.faults.clear()
        resp.media = []


class Fault(_Resource):
    """``DELETE /_emulator/faults/{id}``."""

    def on_delete(self, req: falcon.Request, resp: falcon.Response, rule_id: int) -> None:
        if not self.emu.faults.remove(rule_id):
            raise falcon.HTTPNotFound(title=f"no fault rule {rule_id}")
        resp.media = self.emu.faults.rules()


class Requests(_Resource):
    """``GET``/``DELETE /_emulator/requests``: the request log (``?since=SEQ``)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.emu.log.entries(req.get_param_as_int("since") or 0)

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.emu.log.clear()
        resp.media = []


class Clock(_Resource):
    """``GET``/``POST /_emulator/clock``: ``{"advance": s}``, ``{"set": epoch}``, ``{"freeze": bool}``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"now": self.emu.clock.now(), "frozen": self.emu.clock.frozen}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        if not isinstance(body, dict):
            raise falcon.HTTPBadRequest(title="expected an object")
        if "freeze" in body:
            self.emu.clock.freeze(bool(body["freeze"]))
        if "set" in body:
            self.emu.clock.set(float(body["set"]))
        if "advance" in body:
            self.emu.clock.advance(float(body["advance"]))
        self.on_get(req, resp)


class AdminInstances(_Resource):
    """``GET /_emulator/instances``: every instance ever launched, gone ones too."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.emu.state.admin_instances()


class AdminInstance(_Resource):
    """``PATCH /_emulator/instances/{id}`` with ``{"status": ...}``: force a status."""

    def on_patch(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        body = _body(req)
        try:
            resp.media = self.emu.state.force_status(instance_id, body.get("status"))
        except KeyError:
            raise falcon.HTTPNotFound(title=f"no instance {instance_id}") from None


class UserData(_Resource):
    """``GET /_emulator/instances/{id}/user_data``: the raw user data (204 when none)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        try:
            text = self.emu.state.user_data(instance_id)
        except KeyError:
            raise falcon.HTTPNotFound(title=f"no instance {instance_id}") from None
        if text is None:
            resp.status = falcon.HTTP_204
            return
        resp.content_type = "text/plain; charset=utf-8"
        resp.text = text


class Reset(_Resource):
    """``POST /_emulator/reset``: back to the seed; clears faults, the log and rate-limit windows."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.emu.reset()
        resp.media = {"ok": True}


def _admin_error(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    if isinstance(ex, falcon.HTTPError):
        resp.status = ex.status
        resp.media = {"error": ex.title}
    elif isinstance(ex, (ValueError, TypeError, KeyError)):
        resp.status = falcon.HTTP_400
        resp.media = {"error": str(ex)}
    else:
        raise ex


def create_admin(emulator: "Emulator") -> falcon.App:
    """The Falcon app serving ``/_emulator``."""
    app = falcon.App()
    app.req_options.strip_url_path_trailing_slash = True
    routes = (
        ("/health", Health), ("/config", Config), ("/capacity", Capacity), ("/faults", Faults),
        ("/faults/{rule_id:int}", Fault), ("/requests", Requests), ("/clock", Clock),
        ("/instances", AdminInstances), ("/instances/{instance_id}", AdminInstance),
        ("/instances/{instance_id}/user_data", UserData), ("/reset", Reset),
    )
    for path, resource in routes:
        app.add_route(ADMIN_PREFIX + path, resource(emulator))
    app.add_error_handler(Exception, _admin_error)
    return app
