"""The built-in ``jsonl`` cost sink: an append-only JSON Lines export of every cost event."""

from __future__ import annotations

from soong import hookimpl


@hookimpl
def soong_register_cost_sinks(register):
    """Register :class:`~soong.plugins.jsonl_sink.sink.JsonlSink`."""
    from soong.plugins.jsonl_sink.sink import JsonlSink

    register(JsonlSink)
