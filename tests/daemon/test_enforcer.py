"""The enforcement loop, one check at a time on a manual clock."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from falcon import testing

from soong.testing.net import free_port
from soong_daemon.activity import ACTIVE, IDLE, UNKNOWN
from soong_daemon.api import LambdaApi
from soong_daemon.app import create_app
from soong_daemon.enforcer import exclusive
from soong_daemon.notify import Notifier
from soong_daemon.terminator import Backoff, TerminationResult, Terminator
from tests.daemon.conftest import (
    API_KEY,
    TOKEN,
    QuietNotifier,
    RecordingTerminator,
    SettableSource,
    instance_status,
    launch_instance,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOUR = 3600


def shutdown_reason(app):
    shutdown = app.parts.store.read()["shutdown"]
    return shutdown and shutdown["reason"]


def test_lease_end_terminates_once(make_app, clock):
    app = make_app()
    source = app.parts.activity_sources[0]
    source.status = ACTIVE
    lease_end = app.parts.store.read()["lease_end"]
    clock.t = lease_end - 1
    app.enforcer.tick()
    assert app.parts.terminator.calls == []
    clock.t = lease_end
    app.enforcer.tick()
    assert shutdown_reason(app) == "lease_expired"
    assert app.parts.terminator.calls == [app.parts.config.instance_id]
    clock.advance(60)
    app.enforcer.tick()
    assert len(app.parts.terminator.calls) == 1  # decided once, verified once


def test_idle_timeout_terminates_when_nothing_is_used(make_app, clock):
    app = make_app()
    clock.advance(29 * 60)
    app.enforcer.tick()
    assert shutdown_reason(app) is None
    clock.advance(60)
    app.enforcer.tick()
    assert shutdown_reason(app) == "idle"
    assert "no activity for 30 min" in app.parts.store.read()["shutdown"]["detail"]


def test_activity_keeps_it_alive_but_not_past_the_lease(make_app, clock):
    app = make_app()
    app.parts.activity_sources[0].status = ACTIVE
    lease_end = app.parts.store.read()["lease_end"]
    while clock.now() + 20 * 60 < lease_end:
        clock.advance(20 * 60)
        app.enforcer.tick()
        assert shutdown_reason(app) is None
    clock.t = lease_end
    app.enforcer.tick()
    assert shutdown_reason(app) == "lease_expired"
    assert app.parts.store.read()["activity_counts"]["probe"] >= 10


def test_an_unknown_source_holds_the_idle_timer_but_not_the_lease(make_app, clock):
    app = make_app()
    source = app.parts.activity_sources[0]
    source.status = UNKNOWN
    for _ in range(10):
        clock.advance(20 * 60)
        app.enforcer.tick()
    assert shutdown_reason(app) is None
    source.status = IDLE
    clock.advance(29 * 60)
    app.enforcer.tick()
    assert shutdown_reason(app) is None  # idle counts from the last unknown reading
    lease_end = app.parts.store.read()["lease_end"]
    source.status = UNKNOWN
    clock.t = lease_end
    app.enforcer.tick()
    assert shutdown_reason(app) == "lease_expired"


def test_hard_limit_overrides_extensions_and_activity(make_app, clock):
    app = make_app()
    client = testing.TestClient(app)
    app.parts.activity_sources[0].status = ACTIVE
    assert client.simulate_post("/extend", headers=AUTH, json={"hours": 4}).status_code == 200
    state = app.parts.store.read()
    assert state["lease_end"] == state["hard_limit_at"]
    clock.t = state["hard_limit_at"] - 1
    client.simulate_post("/activity", headers=AUTH)
    app.enforcer.tick()
    assert shutdown_reason(app) is None
    clock.t = state["hard_limit_at"]
    app.enforcer.tick()
    assert shutdown_reason(app) == "hard_limit"


def test_warning_is_sent_once_before_the_lease_ends(make_app, clock):
    app = make_app()
    app.parts.activity_sources[0].status = ACTIVE
    notifier = app.parts.notifier
    lease_end = app.parts.store.read()["lease_end"]
    clock.t = lease_end - 11 * 60
    app.enforcer.tick()
    assert notifier.messages == []
    clock.t = lease_end - 9 * 60
    app.enforcer.tick()
    clock.advance(60)
    app.enforcer.tick()
    assert len(notifier.messages) == 1
    message, payload = notifier.messages[0]
    assert "will be terminated in 9 min" in message and "soong extend" in message
    assert payload["reason"] == "lease_expired" and payload["event"] == "warning"
    clock.t = lease_end
    app.enforcer.tick()
    assert [p["event"] for _, p in notifier.messages] == ["warning", "terminating"]


class FailingTerminator:
    """A terminator whose API never answers (the daemon is stopped before it succeeds)."""

    def __init__(self) -> None:
        self.calls = 0

    def terminate(self, resolve_id, progress):
        self.calls += 1
        result = TerminationResult("interrupted", 3, last_error="HTTP 503")
        progress(result)
        return result


def test_a_restart_resumes_an_unfinished_termination(make_config, clock):
    config = make_config()
    failing = FailingTerminator()
    first = create_app(config, clock=clock, terminator=failing, activity_sources=[SettableSource()],
                       notifier=QuietNotifier(), gpu_probe=lambda: None)
    clock.t = first.parts.store.read()["lease_end"]
    first.enforcer.tick()
    assert failing.calls == 1
    assert first.parts.store.read()["termination"]["outcome"] == "interrupted"
    recording = RecordingTerminator()
    second = create_app(config, clock=clock, terminator=recording, activity_sources=[SettableSource()],
                        notifier=QuietNotifier(), gpu_probe=lambda: None)
    second.enforcer.tick()
    assert recording.calls == [config.instance_id]
    state = second.parts.store.read()
    assert state["termination"]["outcome"] == "verified" and state["shutdown"]["reason"] == "lease_expired"
    assert [p["event"] for _, p in second.parts.notifier.messages] == []  # the final notice went out once


def test_instance_found_by_name_and_terminated_through_the_api(make_config, clock, emulator):
    instance_id = launch_instance(emulator, "soong-by-name")
    config = make_config(instance_id="", instance_name="soong-by-name", provider_api_url=emulator.url)
    api = LambdaApi(config.provider_api_url, lambda: API_KEY, min_interval=0)
    term = Terminator(api, backoff=Backoff(initial=0.01, maximum=0.05))
    app = create_app(config, clock=clock, api=api, terminator=term, activity_sources=[SettableSource()],
                     notifier=QuietNotifier(), gpu_probe=lambda: None)
    assert app.parts.store.read()["instance_id"] is None
    app.enforcer.tick()
    assert app.parts.store.read()["instance_id"] == instance_id
    assert testing.TestClient(app).simulate_get("/status", headers=AUTH).json["instance_id"] == instance_id
    testing.TestClient(app).simulate_post("/shutdown", headers=AUTH)
    app.enforcer.tick()
    assert instance_status(emulator, instance_id) in {"terminating", "terminated", "gone"}
    assert app.parts.store.read()["termination"]["outcome"] == "verified"


def test_only_one_enforcer_holds_the_lock(tmp_path):
    stop = threading.Event()
    with exclusive(tmp_path, stop) as first:
        assert first
        stop.set()
        with exclusive(tmp_path, stop) as second:
            assert second is False
    with exclusive(tmp_path, threading.Event()) as again:
        assert again


def test_the_loop_survives_a_failing_check_and_stops_when_told(make_app, clock, caplog):
    app = make_app(check_interval_seconds=0.05)
    path = app.parts.store.path
    path.unlink()
    path.mkdir()
    stop = threading.Event()
    runner = threading.Thread(target=app.enforcer.run, args=(stop,))
    runner.start()
    try:
        deadline = threading.Event()
        for _ in range(100):
            if caplog.text.count("enforcement check failed") >= 2:
                break
            deadline.wait(0.05)
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()
    assert caplog.text.count("enforcement check failed") >= 2


@pytest.fixture
def webhook_server():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/secret-path-77", received
    server.shutdown()
    server.server_close()


def test_webhook_gets_the_warning_and_its_url_is_never_logged(webhook_server, caplog):
    url, received = webhook_server
    Notifier(url, wall=False).warn("instance x will be terminated", {"event": "warning", "reason": "idle"})
    assert received == [{"event": "warning", "reason": "idle", "message": "instance x will be terminated"}]
    Notifier(f"http://127.0.0.1:{free_port()}/hooks/secret-path-77", wall=False).warn("again", {})
    assert "secret-path-77" not in caplog.text


def test_a_lowered_hard_limit_sticks_and_wins_over_the_lease(make_config, clock):
    def start(hard_hours):
        return create_app(make_config(hard_limit_hours=hard_hours), clock=clock, terminator=RecordingTerminator(),
                          activity_sources=[SettableSource(status=ACTIVE)], notifier=QuietNotifier(),
                          gpu_probe=lambda: None)

    app = start(8)
    assert testing.TestClient(app).simulate_post("/extend", headers=AUTH, json={"hours": 3}).status_code == 200
    launched = app.parts.store.read()["launched_at"]
    start(5)
    app = start(8)  # raising it again does not undo the lower limit
    state = app.parts.store.read()
    assert state["hard_limit_at"] == launched + 5 * HOUR < state["lease_end"]
    clock.t = launched + 5 * HOUR
    app.enforcer.tick()
    assert shutdown_reason(app) == "hard_limit"


def test_a_source_unreadable_for_long_is_reported_once(make_app, clock, caplog):
    app = make_app()
    source = app.parts.activity_sources[0]
    source.status = UNKNOWN
    app.enforcer.tick()
    first_unknown = app.parts.store.read()["sources"]["probe"]["unknown_since"]
    for _ in range(4):
        clock.advance(10 * 60)
        app.enforcer.tick()
    assert app.parts.store.read()["sources"]["probe"]["unknown_since"] == first_unknown
    assert caplog.text.count("activity source probe has been unreadable") == 1
    body = testing.TestClient(app).simulate_get("/status", headers=AUTH).json
    assert body["sources"]["probe"]["unknown_since"] is not None
    source.status = IDLE
    app.enforcer.tick()
    assert "unknown_since" not in app.parts.store.read()["sources"]["probe"]
