"""The built-in ``ledger`` cost sink: every cost event is stored in the local SQLite ledger."""

from __future__ import annotations

from soong import hookimpl


@hookimpl
def soong_register_cost_sinks(register):
    """Register :class:`~soong.plugins.ledger.sink.LedgerSink`."""
    from soong.plugins.ledger.sink import LedgerSink

    register(LedgerSink)
