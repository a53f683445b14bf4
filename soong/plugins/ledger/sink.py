"""The ``ledger`` cost sink: events go to the ``events`` table of the local ledger."""

from __future__ import annotations

from soong.core.interfaces import CostSink
from soong.core.ledger import Ledger


class LedgerSink(CostSink):
    """Stores every cost event in the profile's ledger, once per ``event_id``.

    Instance rows (launch, extension, termination) are written by the lifecycle
    through :class:`~soong.core.ledger.Ledger` itself; this sink keeps the event
    history next to them so ``soong history`` and ``soong cost`` need nothing else.
    """

    name = "ledger"

    def __init__(self, context):
        super().__init__(context)
        self.ledger = Ledger.for_context(context)

    def emit(self, event):
        """Store ``event`` (a repeated delivery of the same event is ignored)."""
        self.ledger.add_event(event)

    def close(self):
        """Close this thread's database connection."""
        self.ledger.close()
