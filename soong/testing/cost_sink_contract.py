"""A contract every cost sink should pass: subclass :class:`CostSinkContract` in a test module.

Example (see ``contrib/soong-webhook-sink`` for a complete one)::

    from soong.testing.cost_sink_contract import CostSinkContract
    import my_sink_plugin

    class TestMySink(CostSinkContract):
        plugin_module = my_sink_plugin
        sink_name = "my-sink"

        def delivered(self, sink):
            return [...]  # the CostEvents that reached the sink's destination, in order

Override :meth:`configure` to prepare the environment (a URL, a file), and
:meth:`make_failing_sink` to return a sink whose destination is broken, which the
contract then checks raises instead of swallowing the failure.
"""

from __future__ import annotations

import datetime as _dt
import os
import threading
from typing import Any

import pytest

from soong.core.costs import CostEmitter, DeliveryQueue, with_event_id
from soong.core.interfaces import CostSink
from soong.core.types import COST_EVENT_KINDS, CostEvent

BASE_TIME = _dt.datetime(2024, 5, 1, 12, 0, tzinfo=_dt.timezone.utc)


def sample_event(kind: str = "launched", index: int = 0, **changes: Any) -> CostEvent:
    """A realistic event with a unique ``event_id``."""
    values: dict[str, Any] = dict(
        kind=kind, instance_id=f"inst-{index:04d}", at=BASE_TIME + _dt.timedelta(minutes=index),
        instance_type="gpu_1x_a10", region="us-east-1", price_cents_per_hour=75,
        cost_usd=round(0.0125 * index, 6), reason="user" if kind == "terminated" else None,
        data={"launch_name": f"soong-test-{index}", "model": "llama-3.1-8b"},
    )
    values.update(changes)
    return with_event_id(CostEvent(**values))


class CostSinkContract:
    """Behaviour every cost sink must show. Subclasses set the attributes and :meth:`delivered`."""

    #: the plugin object or module whose ``soong_register_cost_sinks`` registers the sink.
    plugin_module: Any = None
    #: the sink's registered name.
    sink_name: str = ""

    # -- hooks for subclasses ---------------------------------------------------------------------
    def configure(self, tmp_path: Any, monkeypatch: Any) -> None:
        """Prepare the environment (point the sink at a destination under ``tmp_path``)."""

    def delivered(self, sink: Any) -> list[CostEvent]:
        """The events that reached the sink's destination, in order of arrival."""
        raise NotImplementedError

    def make_failing_sink(self, context: Any) -> Any:
        """A sink of this class whose destination is broken, or None to skip that check."""
        return None

    # -- fixtures ---------------------------------------------------------------------------------
    @pytest.fixture
    def sink_context(self, tmp_path, monkeypatch):
        """A context whose plugin host holds only this sink's plugin."""
        from soong.core.context import Context
        from soong.core.plugins import PluginHost, PluginInfo

        self.configure(tmp_path, monkeypatch)
        host = PluginHost(discover=False, env={})
        info = host.add_plugin(self.plugin_module, PluginInfo(self.sink_name))
        assert info.status == "loaded", info.detail
        context = Context(env=dict(os.environ), plugin_host=host, clock=lambda: BASE_TIME)
        return context

    @pytest.fixture
    def sink(self, sink_context):
        """A fresh sink instance, closed after the test."""
        sink = sink_context.plugins.cost_sinks()[self.sink_name](sink_context)
        yield sink
        sink.close()

    # -- the contract -----------------------------------------------------------------------------
    def test_registers_a_valid_sink_class(self, sink_context):
        classes = sink_context.plugins.cost_sinks()
        assert list(classes) == [self.sink_name]
        cls = classes[self.sink_name]
        assert issubclass(cls, CostSink) and cls.name == self.sink_name
        assert cls.__doc__ and cls.emit.__doc__, "document the sink class and its emit method"

    def test_every_kind_arrives_intact(self, sink):
        sent = [sample_event(kind, i) for i, kind in enumerate(COST_EVENT_KINDS)]
        for event in sent:
            sink.emit(event)
        got = self.delivered(sink)
        assert [e.data["event_id"] for e in got] == [e.data["event_id"] for e in sent]
        for mine, theirs in zip(sent, got, strict=True):
            assert (theirs.kind, theirs.instance_id, theirs.instance_type, theirs.region, theirs.reason) == (
                mine.kind, mine.instance_id, mine.instance_type, mine.region, mine.reason)
            assert theirs.at == mine.at
            assert theirs.cost_usd == pytest.approx(mine.cost_usd)

    def test_text_and_missing_fields_survive(self, sink):
        event = sample_event("activity", 7, cost_usd=None, instance_type=None,
                             data={"note": "naïve – 東京 \"quoted\"\nnewline", "nested": {"a": [1, 2]}})
        sink.emit(event)
        (got,) = self.delivered(sink)
        assert got.cost_usd is None and got.instance_type is None
        assert got.data["note"] == event.data["note"] and got.data["nested"] == {"a": [1, 2]}

    def test_a_repeated_delivery_does_not_fail(self, sink):
        event = sample_event("terminated", 3)
        sink.emit(event)
        sink.emit(event)  # the emitter delivers at least once; a repeat must be harmless
        ids = [e.data["event_id"] for e in self.delivered(sink)]
        assert 1 <= ids.count(event.data["event_id"]) <= 2

    def test_close_is_safe_and_a_new_instance_continues(self, sink_context, sink):
        sink.emit(sample_event("launched", 1))
        sink.close()
        sink.close()
        again = sink_context.plugins.cost_sinks()[self.sink_name](sink_context)
        again.emit(sample_event("terminated", 2))
        assert [e.kind for e in self.delivered(again)] == ["launched", "terminated"]
        again.close()

    def test_emit_works_from_worker_threads(self, sink):
        events = [sample_event("accrued", i) for i in range(8)]
        errors: list[BaseException] = []

        def send(event: CostEvent) -> None:
            try:
                sink.emit(event)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(e,)) for e in events]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not errors
        assert sorted(e.data["event_id"] for e in self.delivered(sink)) == sorted(e.data["event_id"] for e in events)

    def test_the_emitter_delivers_to_it(self, sink_context, tmp_path):
        emitter = CostEmitter(sink_context, queue=DeliveryQueue(tmp_path / "queue"), timeout=30)
        report = emitter.emit(sample_event("launched", 5))
        assert report.delivered == [self.sink_name] and not report.queued
        emitter.close()

    def test_a_broken_destination_raises_and_is_queued(self, sink_context, tmp_path):
        broken = self.make_failing_sink(sink_context)
        if broken is None:
            pytest.skip("this sink has no way to break its destination")
        with pytest.raises(Exception):  # noqa: B017 - any exception: the point is that it is not swallowed
            broken.emit(sample_event("launched", 1))
        queue = DeliveryQueue(tmp_path / "queue")
        emitter = CostEmitter(sink_context, sinks={self.sink_name: lambda ctx: broken}, queue=queue, timeout=30,
                              warn=lambda message: None)
        report = emitter.emit(sample_event("launched", 2))
        assert list(report.queued) == [self.sink_name] and queue.size(self.sink_name) == 1
