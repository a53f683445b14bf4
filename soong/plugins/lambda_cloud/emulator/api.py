"""The Falcon resources of the emulated ``/api/v1``: real paths, bodies and error envelopes."""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon

from soong.plugins.lambda_cloud.emulator import errors as E
from soong.plugins.lambda_cloud.emulator.state import EmulatorState

LOG = logging.getLogger(__name__)
PREFIX = "/api/v1"


def read_json(req: falcon.Request) -> Any:
    """The request body as JSON, whatever the content type (curl's --data sends a form type)."""
    raw = req.bounded_stream.read()
    if not raw.strip():
        raise E.invalid_parameters("Request body is required.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise E.invalid_parameters("Request body is not valid JSON.") from None


def ok(resp: falcon.Response, data: Any) -> None:
    """A success envelope."""
    resp.media = {"data": data}


class Instances:
    """``GET /instances``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, self.state.list_instances(req.get_param("cluster_id")))


class Instance:
    """``GET /instances/{id}`` and ``POST /instances/{id}`` (rename)."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        ok(resp, self.state.get_instance(instance_id))

    def on_post(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        ok(resp, self.state.rename(instance_id, read_json(req)))


class InstanceTypes:
    """``GET /instance-types``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, self.state.instance_types_json())


class Launch:
    """``POST /instance-operations/launch``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, {"instance_ids": self.state.launch(read_json(req))})


class Terminate:
    """``POST /instance-operations/terminate``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, {"terminated_instances": self.state.terminate(read_json(req))})


class Restart:
    """``POST /instance-operations/restart``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, {"restarted_instances": self.state.restart(read_json(req))})


class SshKeys:
    """``GET /ssh-keys`` and ``POST /ssh-keys``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, self.state.list_ssh_keys())

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, self.state.add_ssh_key(read_json(req)))


class SshKey:
    """``DELETE /ssh-keys/{id}``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_delete(self, req: falcon.Request, resp: falcon.Response, key_id: str) -> None:
        ok(resp, self.state.delete_ssh_key(key_id))


class FileSystems:
    """``GET /file-systems``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, self.state.list_file_systems())


class FileSystemCreate:
    """``POST /filesystems``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, self.state.create_file_system(read_json(req)))


class FileSystem:
    """``DELETE /filesystems/{id}``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_delete(self, req: falcon.Request, resp: falcon.Response, fs_id: str) -> None:
        ok(resp, self.state.delete_file_system(fs_id))


class Images:
    """``GET /images``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, self.state.list_images())


class FirewallRulesets:
    """``GET /firewall-rulesets``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, self.state.list_firewall_rulesets())


class FirewallRulesetsCreate(FirewallRulesets):
    """``POST /firewall-rulesets`` (with ``GET``)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, self.state.firewall_call("create", read_json(req)))


class GlobalFirewallRuleset:
    """``GET``/``PATCH /firewall-rulesets/global``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, self.state.firewall_call("global_json"))

    def on_patch(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, self.state.firewall_call("set_global", read_json(req), False))


class FirewallRuleset:
    """``GET``/``PATCH``/``DELETE /firewall-rulesets/{id}``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response, ruleset_id: str) -> None:
        ok(resp, self.state.firewall_call("get", ruleset_id))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, ruleset_id: str) -> None:
        ok(resp, self.state.firewall_call("patch", ruleset_id, read_json(req)))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, ruleset_id: str) -> None:
        ok(resp, self.state.firewall_call("delete", ruleset_id))


class FirewallRules:
    """``GET``/``PUT /firewall-rules`` (the global rules)."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, self.state.firewall_call("global_json")["rules"])

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, self.state.firewall_call("set_global", read_json(req), True))


class AuditEvents:
    """``GET /audit-events``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok(resp, self.state.audit_events(req.get_param("start"), req.get_param("end"), req.get_param("resource_type")))


ROUTES = (
    ("/instances", Instances),
    ("/instances/{instance_id}", Instance),
    ("/instance-types", InstanceTypes),
    ("/instance-operations/launch", Launch),
    ("/instance-operations/terminate", Terminate),
    ("/instance-operations/restart", Restart),
    ("/ssh-keys", SshKeys),
    ("/ssh-keys/{key_id}", SshKey),
    ("/file-systems", FileSystems),
    ("/filesystems", FileSystemCreate),
    ("/filesystems/{fs_id}", FileSystem),
    ("/images", Images),
    ("/firewall-rulesets", FirewallRulesetsCreate),
    ("/firewall-rulesets/global", GlobalFirewallRuleset),
    ("/firewall-rulesets/{ruleset_id}", FirewallRuleset),
    ("/firewall-rules", FirewallRules),
    ("/audit-events", AuditEvents),
)


def _emulated_error(req: falcon.Request, resp: falcon.Response, ex: E.EmulatedError, params: Any) -> None:
    resp.status = ex.status
    resp.media = ex.body()
    for name, value in ex.headers.items():
        resp.set_header(name, value)


def _http_error(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError, params: Any) -> None:
    status = ex.status_code
    if status == 404:
        error = E.EmulatedError(404, "global/object-does-not-exist", "Not found.")
    elif status == 405:
        error = E.EmulatedError(405, "global/invalid-parameters", f"Method {req.method} is not allowed here.")
    else:
        error = E.invalid_parameters(ex.title or "Invalid request data.")
        error.status = status if 400 <= status < 500 else 400
    _emulated_error(req, resp, error, params)


def _unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    LOG.exception("emulator bug while handling %s %s", req.method, req.path)
    _emulated_error(req, resp, E.internal_error(), params)


def create_api(state: EmulatorState) -> falcon.App:
    """The Falcon app serving ``/api/v1`` (without auth, rate limits or faults: see :mod:`.app`)."""
    app = falcon.App()
    app.req_options.strip_url_path_trailing_slash = True
    for path, resource in ROUTES:
        app.add_route(PREFIX + path, resource(state))
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(E.EmulatedError, _emulated_error)
    return app
