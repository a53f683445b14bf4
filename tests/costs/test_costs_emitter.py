"""The emitter: every sink gets every event; a failing or hanging sink is queued, bounded and retried."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from soong.core.context import Context
from soong.core.costs import CostEmitter, DeliveryQueue, emitter_for
from soong.core.ledger import Ledger
from soong.core.redact import register_secret
from soong.plugins.jsonl_sink.sink import JsonlSink
from soong.testing.cost_sink_contract import sample_event
from tests.costs.conftest import builtin_sink_host
from tests.costs.sink_plugins import BrokenInitSink, FileSink, Plugin, StallingSink, file_sink_events


@pytest.fixture
def file_target(tmp_path, monkeypatch):
    target = tmp_path / "file-sink.jsonl"
    monkeypatch.setenv("TEST_FILE_SINK", str(target))
    return target


def make_context(*sink_classes):
    return Context(env=dict(os.environ), plugin_host=builtin_sink_host(Plugin(*sink_classes)))


def ledger_ids(context):
    return [e.data["event_id"] for e in Ledger.for_context(context).events()]


def jsonl_ids(context):
    return [e.data["event_id"] for e in JsonlSink(context).read()]


def quiet():
    messages = []
    return messages, messages.append


def test_every_sink_gets_every_event(file_target):
    context = make_context(FileSink)
    event = sample_event("launched", 1)
    report = CostEmitter(context).emit(event)
    assert sorted(report.delivered) == ["file", "jsonl", "ledger"] and not report.queued
    event_id = event.data["event_id"]
    assert ledger_ids(context) == jsonl_ids(context) == file_sink_events(file_target) == [event_id]


def test_an_event_gets_an_id_when_it_has_none(file_target):
    from soong.core.types import CostEvent

    context = make_context(FileSink)
    report = CostEmitter(context).emit(CostEvent("accrued", "i-1", at=sample_event().at))
    assert report.event.data["event_id"] and file_sink_events(file_target) == [report.event.data["event_id"]]


def test_a_failing_sink_is_queued_and_the_others_still_get_the_event(file_target):
    file_target.mkdir()  # the file sink cannot write: its path is a folder
    context = make_context(FileSink)
    messages, warn = quiet()
    emitter = CostEmitter(context, warn=warn)
    first, second = sample_event("launched", 1), sample_event("terminated", 2)
    report = emitter.emit(first)
    emitter.emit(second)
    assert sorted(report.delivered) == ["jsonl", "ledger"] and list(report.queued) == ["file"]
    assert "IsADirectoryError" in report.queued["file"]
    assert ledger_ids(context) == jsonl_ids(context) == [first.data["event_id"], second.data["event_id"]]
    assert len(messages) == 1 and "file" in messages[0] and "soong sinks status" in messages[0]
    status = {s.name: s for s in emitter.status()}
    assert status["file"].queued == 2 and status["file"].last_error and status["ledger"].queued == 0

    # the next command (a new emitter) retries the backlog first, oldest first, then sends new events
    file_target.rmdir()
    third = sample_event("accrued", 3)
    report = CostEmitter(context, warn=warn).emit(third)
    assert sorted(report.delivered) == ["file", "jsonl", "ledger"]
    assert file_sink_events(file_target) == [first.data["event_id"], second.data["event_id"], third.data["event_id"]]
    assert {s.name: s.queued for s in emitter.status()}["file"] == 0


def test_a_sink_that_cannot_be_built_is_queued(file_target):
    context = make_context(FileSink, BrokenInitSink)
    messages, warn = quiet()
    report = CostEmitter(context, warn=warn).emit(sample_event("launched", 1))
    assert list(report.queued) == ["broken-init"] and "misconfigured sink" in report.queued["broken-init"]
    assert sorted(report.delivered) == ["file", "jsonl", "ledger"]


def test_a_hanging_sink_does_not_block_the_command(file_target, monkeypatch):
    server = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    monkeypatch.setenv("TEST_STALL_PORT", str(server.getsockname()[1]))
    try:
        context = make_context(FileSink, StallingSink)
        messages, warn = quiet()
        report = CostEmitter(context, timeout=0.5, warn=warn).emit(sample_event("launched", 1))
        assert report.queued == {"stalling": "timed out after 0.5s"}
        assert sorted(report.delivered) == ["file", "jsonl", "ledger"]
    finally:
        server.close()


def test_the_queue_is_bounded_and_drops_the_oldest(tmp_path):
    queue = DeliveryQueue(tmp_path / "q", max_items=10)
    events = [sample_event("accrued", i) for i in range(15)]
    dropped = [queue.push("s", e, "down") for e in events]
    assert sum(dropped) == 5
    kept = [e["event"]["data"]["event_id"] for e in queue.entries("s")]
    assert kept == [e.data["event_id"] for e in events[5:]]
    assert queue.status("s").dropped == 5 and queue.status("s").queued == 10


def test_sink_names_with_dots_get_their_own_queue(tmp_path):
    queue = DeliveryQueue(tmp_path / "q")
    queue.push("acme.billing", sample_event("launched", 1), "down")
    queue.push("acme", sample_event("launched", 2), "down")
    assert queue.sinks() == ["acme", "acme.billing"]
    assert queue.size("acme.billing") == 1 and queue.size("acme") == 1


def test_drain_stops_at_the_first_failure_and_keeps_order(tmp_path):
    queue = DeliveryQueue(tmp_path / "q")
    events = [sample_event("accrued", i) for i in range(5)]
    for event in events:
        queue.push("s", event, "down")
    seen = []

    def deliver(event):
        if len(seen) == 2:
            raise ConnectionError("still down")
        seen.append(event.data["event_id"])

    assert queue.drain("s", deliver)[:2] == (2, 3)
    remaining = queue.entries("s")
    assert [e["event"]["data"]["event_id"] for e in remaining] == [e.data["event_id"] for e in events[2:]]
    assert remaining[0]["attempts"] == 2 and "still down" in remaining[0]["error"]


def test_two_drains_at_once_deliver_each_event_once(tmp_path):
    queue = DeliveryQueue(tmp_path / "q")
    for i in range(20):
        queue.push("s", sample_event("accrued", i), "down")
    delivered, lock = [], threading.Lock()
    started = threading.Barrier(2)

    def deliver(event):
        with lock:
            delivered.append(event.data["event_id"])

    def drain():
        started.wait()
        queue.drain("s", deliver)

    threads = [threading.Thread(target=drain) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    queue.drain("s", deliver)  # whatever a skipped drain left
    assert len(delivered) == len(set(delivered)) == 20 and queue.size("s") == 0


def test_secrets_never_reach_the_queue(file_target):
    secret = "hooks-secret-value-99817"
    register_secret(secret)

    class LeakySink(FileSink):
        name = "leaky"

        def emit(self, event):
            raise ConnectionError(f"POST https://example.invalid/{secret} failed")

    context = make_context(LeakySink)
    messages, warn = quiet()
    emitter = CostEmitter(context, warn=warn)
    emitter.emit(sample_event("launched", 1))
    queue_files = list((context.paths.state_dir / "cost-queue").iterdir())
    assert queue_files and all(secret not in p.read_text() for p in queue_files)
    assert secret not in " ".join(messages)


def test_unknown_kinds_are_refused(context):
    with pytest.raises(ValueError):
        emitter_for(context).emit(sample_event("exploded", 1))


def test_sinks_status_and_retry_commands(run_soong, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    env = {"SOONG_COSTS_JSONL_PATH": str(blocker / "events.jsonl")}
    context = Context(env={**os.environ, **env})
    messages, warn = quiet()
    CostEmitter(context, warn=warn).emit(sample_event("launched", 1))
    status = run_soong("sinks", "status", "-f", "json", env=env)
    assert status.returncode == 0, status.stderr
    import json

    rows = {row["Sink"]: row for row in json.loads(status.stdout)}
    assert rows["jsonl"]["Queued"] == 1 and rows["ledger"]["Queued"] == 0 and rows["jsonl"]["Plugin"] == "jsonl"
    failed = run_soong("sinks", "retry", env=env)
    assert failed.returncode == 1 and "1 still queued" in failed.stdout
    target = tmp_path / "events.jsonl"
    ok = run_soong("sinks", "retry", env={"SOONG_COSTS_JSONL_PATH": str(target)})
    assert ok.returncode == 0 and "1 delivered, 0 still queued" in ok.stdout
    assert len(target.read_text().splitlines()) == 1
