"""The webhook sink against a real HTTP server on loopback, plus soong's cost sink contract.

Run from this folder with ``python -m pytest tests`` (soong must be importable; the
package itself need not be installed).
"""

from __future__ import annotations

import ast
import http.server
import json
import os
import sys
import threading
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1]
if str(HERE) not in sys.path:  # works from a checkout without installing the package
    sys.path.insert(0, str(HERE))

import soong_webhook_sink  # noqa: E402
from soong_webhook_sink.sink import WebhookError, WebhookSink  # noqa: E402

from soong.core.context import Context  # noqa: E402
from soong.core.costs import CostEmitter, DeliveryQueue  # noqa: E402
from soong.core.types import CostEvent  # noqa: E402
from soong.testing.cost_sink_contract import CostSinkContract, sample_event  # noqa: E402
from soong.testing.net import free_port  # noqa: E402

SECRET_PATH = "/services/T0000/B0000/sEcReTtOkEn123456"


class Receiver:
    """A loopback HTTP server that records POSTed JSON bodies and answers with ``status``."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                if receiver.status < 300:
                    receiver.bodies.append(body)
                    receiver.headers.append(dict(self.headers))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def sink_for(monkeypatch, url, **env):
    monkeypatch.setenv("SOONG_SECRET_WEBHOOK_URL", url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return WebhookSink(Context(env=dict(os.environ)))


class TestWebhookContract(CostSinkContract):
    plugin_module = soong_webhook_sink
    sink_name = "webhook"

    @pytest.fixture(autouse=True)
    def _receiver(self, monkeypatch):
        self.receiver = Receiver()
        monkeypatch.setenv("SOONG_SECRET_WEBHOOK_URL", self.receiver.url)
        yield
        self.receiver.close()

    def delivered(self, sink):
        return [CostEvent.from_dict(body) for body in self.receiver.bodies]

    def make_failing_sink(self, context):
        self.receiver.status = 503
        return WebhookSink(context)


def test_json_post_carries_the_event_and_an_idempotency_key(receiver, monkeypatch):
    sink = sink_for(monkeypatch, receiver.url)
    event = sample_event("terminated", 4)
    sink.emit(event)
    assert receiver.bodies == [json.loads(json.dumps(event.to_dict()))]
    assert receiver.headers[0]["Idempotency-Key"] == event.data["event_id"]


def test_slack_format_is_one_readable_line(receiver, monkeypatch):
    sink = sink_for(monkeypatch, receiver.url, SOONG_WEBHOOK_FORMAT="slack")
    sink.emit(sample_event("terminated", 4, reason="watchdog", cost_usd=12.5, data={"by": "watchdog"}))
    (body,) = receiver.bodies
    assert list(body) == ["text"]
    assert "inst-0004" in body["text"] and "terminated (watchdog, by watchdog)" in body["text"] and "$12.50" in body["text"]


def test_kinds_filter(receiver, monkeypatch):
    sink = sink_for(monkeypatch, receiver.url, SOONG_WEBHOOK_KINDS="launched,terminated")
    for i, kind in enumerate(("launched", "accrued", "activity", "terminated")):
        sink.emit(sample_event(kind, i))
    assert [b["kind"] for b in receiver.bodies] == ["launched", "terminated"]


def test_errors_never_show_the_url(receiver, monkeypatch):
    receiver.status = 500
    sink = sink_for(monkeypatch, receiver.url)
    with pytest.raises(WebhookError) as answered:
        sink.emit(sample_event())
    dead = sink_for(monkeypatch, f"http://127.0.0.1:{free_port()}{SECRET_PATH}")
    with pytest.raises(WebhookError) as unreachable:
        dead.emit(sample_event())
    for error in (answered.value, unreachable.value):
        assert "sEcReTtOkEn" not in str(error) and "127.0.0.1" not in str(error)
    assert "HTTP 500" in str(answered.value)


def test_missing_url_says_how_to_set_it(monkeypatch):
    monkeypatch.delenv("SOONG_SECRET_WEBHOOK_URL", raising=False)
    with pytest.raises(WebhookError, match="soong secrets set webhook_url"):
        WebhookSink(Context(env=dict(os.environ))).emit(sample_event())


def test_bad_format_is_refused(monkeypatch):
    monkeypatch.setenv("SOONG_WEBHOOK_FORMAT", "xml")
    with pytest.raises(WebhookError, match="SOONG_WEBHOOK_FORMAT"):
        WebhookSink(Context(env=dict(os.environ)))


def test_a_down_webhook_is_queued_then_retried(receiver, monkeypatch, tmp_path):
    monkeypatch.setenv("SOONG_SECRET_WEBHOOK_URL", receiver.url)
    context = Context(env=dict(os.environ))
    queue = DeliveryQueue(tmp_path / "queue")
    messages = []
    receiver.status = 502
    first = sample_event("launched", 1)
    report = CostEmitter(context, sinks={"webhook": WebhookSink}, queue=queue, warn=messages.append).emit(first)
    assert list(report.queued) == ["webhook"] and queue.size("webhook") == 1
    assert "sEcReTtOkEn" not in " ".join(messages) + (tmp_path / "queue" / "webhook.jsonl").read_text()
    receiver.status = 200
    second = sample_event("terminated", 2)
    CostEmitter(context, sinks={"webhook": WebhookSink}, queue=queue, warn=messages.append).emit(second)
    assert [b["data"]["event_id"] for b in receiver.bodies] == [first.data["event_id"], second.data["event_id"]]
    assert queue.size("webhook") == 0


def test_setup_declares_the_entry_point():
    tree = ast.parse((HERE / "setup.py").read_text())
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    entry_points = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "entry_points"))
    assert entry_points == {"soong": ["webhook = soong_webhook_sink"]}
