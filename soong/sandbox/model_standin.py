"""A stand-in for SGLang's HTTP server, for the sandbox and tests. It is not a model.

It answers the routes soong and its daemon use: ``/health``, ``/v1/models``,
``/v1/chat/completions`` (an echo: the reply repeats the last user message, marked
as coming from the stand-in), ``/get_model_info`` and ``/metrics`` with SGLang's
Prometheus counter names, so activity detection works as it does on a GPU.
Run it with one worker: its counters live in memory.

With an API key it enforces it as SGLang 0.5.23 does (``decide_request_auth`` in
``sglang/srt/utils/auth.py``, applied to every route by ``add_api_key_middleware``
when ``--api-key`` is set): ``OPTIONS`` and any path starting ``/health``,
``/ready`` or ``/metrics`` pass without it; every other request needs
``Authorization: Bearer <key>`` (scheme in any case, compared in constant time) and
gets ``401 {"error": "Unauthorized"}`` otherwise.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
import uuid

import falcon

STANDIN_NOTE = "[soong sandbox stand-in, not a real model] "


class Counters:
    """SGLang-style counters, thread safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.running = 0

    def prometheus(self, model_name: str) -> str:
        """The counters in Prometheus text format, named as SGLang names them."""
        label = f'{{model_name="{model_name}"}}'
        with self.lock:
            rows = [
                ("sglang:prompt_tokens_total", "counter", "Number of prefill tokens processed.", self.prompt_tokens),
                ("sglang:generation_tokens_total", "counter", "Number of generation tokens processed.", self.generation_tokens),
                ("sglang:num_requests_total", "counter", "Number of requests processed.", self.requests),
                ("sglang:num_running_reqs", "gauge", "The number of running requests.", self.running),
                ("sglang:num_queue_reqs", "gauge", "The number of requests in the waiting queue.", 0),
            ]
        out = []
        for name, kind, help_text, value in rows:
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name}{label} {float(value)}"]
        return "\n".join(out) + "\n"


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


class Health:
    """``GET /health``: 200 once the (pretend) model is loaded."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.text = ""


class Models:
    """``GET /v1/models``: the one served model."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"object": "list", "data": [
            {"id": self.model_name, "object": "model", "created": int(time.time()), "owned_by": "sglang", "root": self.model_name}
        ]}


class ModelInfo:
    """``GET /get_model_info``."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"model_path": self.model_name, "is_generation": True, "stand_in": True}


class ChatCompletions:
    """``POST /v1/chat/completions``: echo the last user message (no streaming)."""

    def __init__(self, model_name: str, counters: Counters) -> None:
        self.model_name = model_name
        self.counters = counters

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            body = json.loads(req.bounded_stream.read(1_000_000) or b"null")
        except ValueError:
            raise falcon.HTTPBadRequest(title="invalid JSON body") from None
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            raise falcon.HTTPBadRequest(title="'messages' must be a non-empty list")
        if body.get("stream"):
            raise falcon.HTTPBadRequest(title="the sandbox stand-in does not stream; send stream=false")
        last_user = next((m.get("content", "") for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), "")
        if not isinstance(last_user, str):
            last_user = json.dumps(last_user)
        prompt = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        reply = STANDIN_NOTE + "you said: " + last_user
        with self.counters.lock:
            self.counters.running += 1
        try:
            prompt_tokens, completion_tokens = _tokens(prompt), _tokens(reply)
            with self.counters.lock:
                self.counters.requests += 1
                self.counters.prompt_tokens += prompt_tokens
                self.counters.generation_tokens += completion_tokens
        finally:
            with self.counters.lock:
                self.counters.running -= 1
        resp.media = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


class Metrics:
    """``GET /metrics``: SGLang's Prometheus names."""

    def __init__(self, model_name: str, counters: Counters) -> None:
        self.model_name = model_name
        self.counters = counters

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "text/plain; version=0.0.4"
        resp.text = self.counters.prometheus(self.model_name)


#: Path prefixes SGLang 0.5.23 serves without the API key (``decide_request_auth``).
OPEN_PREFIXES = ("/health", "/ready", "/metrics")


def key_allows(method: str, path: str, authorization: str | None, api_key: str | None) -> bool:
    """Whether SGLang with ``--api-key api_key`` lets this request through (see the module docstring)."""
    if not api_key or method == "OPTIONS" or path.startswith(OPEN_PREFIXES):
        return True
    scheme, space, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not space:
        return False
    return hmac.compare_digest(token.encode("utf-8"), api_key.encode("utf-8"))


class RequireApiKey:
    """Falcon middleware: 401 for a request SGLang would refuse without its API key."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not key_allows(req.method, req.path, req.get_header("Authorization"), self.api_key):
            resp.status = falcon.HTTP_401
            resp.media = {"error": "Unauthorized"}
            resp.complete = True


def create_app(model_name: str, counters: Counters | None = None, api_key: str | None = None) -> falcon.App:
    """The stand-in WSGI app serving ``model_name`` (requiring ``api_key`` as SGLang does, when given)."""
    counters = counters or Counters()
    app = falcon.App(middleware=[RequireApiKey(api_key)] if api_key else [])
    app.add_route("/health", Health())
    app.add_route("/v1/models", Models(model_name))
    app.add_route("/get_model_info", ModelInfo(model_name))
    app.add_route("/v1/chat/completions", ChatCompletions(model_name, counters))
    app.add_route("/metrics", Metrics(model_name, counters))
    return app
