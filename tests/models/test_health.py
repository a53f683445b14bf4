"""SGLang health helpers against a stand-in server on loopback speaking /health and /v1/models."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from soong.core.errors import SoongError, UnreachableError
from soong.plugins.sglang import health
from soong.testing.clock import ManualClock
from soong.testing.net import free_port

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


class StandIn(http.server.ThreadingHTTPServer):
    """Answers like SGLang: 503 on /health while loading, then 200; /v1/models lists the model."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.loading_checks = 0  # /health answers 503 this many more times
        self.models = [MODEL]
        self.models_body = None  # raw body override for /v1/models
        self.required_key = None
        self.seen = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: StandIn

    def _send(self, status, body=b"", content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server's name
        self.server.seen.append(self.path)
        if self.server.required_key and self.headers.get("Authorization") != f"Bearer {self.server.required_key}":
            return self._send(401, b'{"error": "unauthorized"}')
        if self.path == "/health":
            if self.server.loading_checks > 0:
                self.server.loading_checks -= 1
                return self._send(503)
            return self._send(200)
        if self.path == "/v1/models":
            if self.server.models_body is not None:
                return self._send(200, self.server.models_body)
            data = [{"id": m, "object": "model", "owned_by": "sglang", "root": m} for m in self.server.models]
            return self._send(200, json.dumps({"object": "list", "data": data}).encode())
        return self._send(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = StandIn()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()




def test_health_and_models(server):
    assert health.is_healthy(server.url)
    assert health.served_models(server.url) == [MODEL]
    state = health.check(server.url)
    assert state.healthy and state.serves(MODEL) and not state.serves("other/model")


def test_loading_server_is_not_healthy(server):
    server.loading_checks = 1
    assert not health.is_healthy(server.url)
    assert health.is_healthy(server.url)


def test_nothing_listening():
    url = f"http://127.0.0.1:{free_port()}"
    assert not health.is_healthy(url, timeout=1)
    with pytest.raises(UnreachableError):
        health.served_models(url, timeout=1)
    assert not health.check(url, timeout=1).healthy


def test_malformed_model_list(server):
    server.models_body = b'{"object": "list"}'
    with pytest.raises(SoongError, match="malformed"):
        health.served_models(server.url)
    server.models_body = b"not json"
    assert not health.check(server.url).healthy


def test_api_key_is_sent(server):
    server.required_key = "sk-local-test"
    assert not health.is_healthy(server.url)
    assert health.is_healthy(server.url, api_key="sk-local-test")
    assert health.served_models(server.url, api_key="sk-local-test") == [MODEL]


def test_wait_until_ready_polls_through_loading(server):
    server.loading_checks = 3
    clock = ManualClock()
    state = health.wait_until_ready(server.url, model=MODEL, timeout=60, interval=5, clock=clock, sleep=clock.sleep)
    assert state.serves(MODEL)
    assert clock.sleeps == [5, 5, 5]
    assert server.seen.count("/health") == 4 and server.seen[-1] == "/v1/models"


def test_wait_until_ready_times_out_on_the_wrong_model(server):
    clock = ManualClock()
    with pytest.raises(UnreachableError, match="not other/model"):
        health.wait_until_ready(server.url, model="other/model", timeout=12, interval=5, clock=clock, sleep=clock.sleep)
    assert clock.now >= 12


def test_wait_until_ready_times_out_while_loading(server):
    server.loading_checks = 10**6
    clock = ManualClock()
    with pytest.raises(UnreachableError, match="not ready"):
        health.wait_until_ready(server.url, timeout=10, interval=5, clock=clock, sleep=clock.sleep)
