"""The built-in sinks pass the cost sink contract."""

from __future__ import annotations

import os

import soong.plugins.jsonl_sink
import soong.plugins.ledger
from soong.core.context import Context
from soong.core.ledger import Ledger
from soong.testing.cost_sink_contract import CostSinkContract


class TestLedgerSink(CostSinkContract):
    plugin_module = soong.plugins.ledger
    sink_name = "ledger"

    def delivered(self, sink):
        return Ledger(sink.ledger.path).events()

    def make_failing_sink(self, context):
        sink = context.plugins.cost_sinks()["ledger"](context)
        blocker = context.paths.data_dir / "not-a-db"
        blocker.mkdir(parents=True, exist_ok=True)  # a folder where the database file should be
        sink.ledger = Ledger(blocker)
        return sink


class TestJsonlSink(CostSinkContract):
    plugin_module = soong.plugins.jsonl_sink
    sink_name = "jsonl"

    def delivered(self, sink):
        return sink.read()

    def make_failing_sink(self, context):
        blocker = context.paths.data_dir / "a-file"
        blocker.parent.mkdir(parents=True, exist_ok=True)
        blocker.write_text("x")
        env = {**os.environ, "SOONG_COSTS_JSONL_PATH": str(blocker / "events.jsonl")}
        return context.plugins.cost_sinks()["jsonl"](Context(env=env, plugin_host=context.plugins))
