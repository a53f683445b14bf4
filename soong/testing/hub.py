"""A local stand-in for the Hugging Face Hub's model API, on a real loopback socket.

It answers the two endpoints :mod:`soong.core.hub` uses, the way the Hub does
(huggingface_hub v1.28.0 ``hf_api.py`` / ``utils/_http.py``):

- ``GET /api/models/{repo_id}``: ``{"id": ..., "gated": false|"auto"|"manual", ...}``;
  404 with ``X-Error-Code: RepoNotFound`` for an unknown repository; 401 with
  ``X-Error-Message: Invalid credentials in Authorization header`` for a token
  the Hub does not know;
- ``GET /api/models/{repo_id}/auth-check``: 200 when the bearer token may read
  the repository, 403 with ``X-Error-Code: GatedRepo`` when its account was not
  granted access, 401 without a valid token.

Use it as a context manager; point ``HF_ENDPOINT`` (or ``huggingface.endpoint``)
at :attr:`HubStandIn.url`. Unknown repositories are public unless ``strict``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclasses.dataclass
class HubStandIn:
    """The stand-in's data: repositories, their gating, tokens and who was granted what.

    :param repos: repo id -> ``gated`` value (False, "auto" or "manual").
    :param grants: token -> repo ids its account may read (gated ones need a grant).
    :param strict: unknown repositories are 404 instead of public.
    :param status: force every answer to this HTTP status (e.g. 503) when set.
    """

    repos: dict[str, Any] = dataclasses.field(default_factory=dict)
    grants: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    strict: bool = False
    status: int | None = None
    requests: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint to use in place of https://huggingface.co."""
        assert self._server is not None, "the stand-in is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "HubStandIn":
        """Listen on a free loopback port in a background thread."""
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                stand_in._answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "HubStandIn":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- the API ---------------------------------------------------------------------------
    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = unquote(urlsplit(handler.path).path)
        auth = handler.headers.get("Authorization") or ""
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        self.requests.append((path, token))
        if self.status is not None:
            return self._send(handler, self.status, {"error": "stand-in forced status"})
        if not path.startswith("/api/models/"):
            return self._send(handler, 404, {"error": "not found"})
        rest = path[len("/api/models/"):]
        auth_check = rest.endswith("/auth-check")
        repo_id = rest[: -len("/auth-check")] if auth_check else rest
        if token is not None and token not in self.grants:
            return self._send(handler, 401, {"error": "Invalid credentials in Authorization header"},
                              {"X-Error-Message": "Invalid credentials in Authorization header"})
        if repo_id not in self.repos and self.strict:
            return self._send(handler, 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        gated = self.repos.get(repo_id, False)
        if not auth_check:
            return self._send(handler, 200, {"id": repo_id, "modelId": repo_id, "gated": gated, "private": False})
        if not gated:
            return self._send(handler, 200, {})
        if token is None:
            return self._send(handler, 401, {"error": "Access to model is restricted; you must be authenticated"},
                              {"X-Error-Code": "GatedRepo"})
        if repo_id in self.grants.get(token, set()):
            return self._send(handler, 200, {})
        return self._send(handler, 403, {"error": f"Access to model {repo_id} is restricted"},
                          {"X-Error-Code": "GatedRepo"})

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
