"""The ``jsonl`` cost sink: one JSON object per line, appended and fsync-ed per event."""

from __future__ import annotations

from pathlib import Path

from soong.core.interfaces import CostSink
from soong.core.jsonl import append_json_line, read_json_lines
from soong.core.types import CostEvent

DEFAULT_FILE = "cost-events.jsonl"


class JsonlSink(CostSink):
    """Appends each event to ``costs.jsonl_path`` (default ``<data dir>/cost-events.jsonl``).

    The file is only ever appended to (``O_APPEND``, one ``write`` per line under
    ``flock``, ``fsync`` before returning), so another program may tail it. A
    retried delivery can repeat a line: consumers drop duplicates by
    ``data.event_id``.
    """

    name = "jsonl"

    def __init__(self, context):
        super().__init__(context)
        configured = context.config.get("costs.jsonl_path")
        self.path = Path(configured).expanduser() if configured else context.paths.data_dir / DEFAULT_FILE

    def emit(self, event):
        """Append ``event`` as one line."""
        append_json_line(self.path, event.to_dict())

    def read(self) -> list[CostEvent]:
        """Every event in the file, in order (lines cut short by a crash are skipped)."""
        return [CostEvent.from_dict(raw) for raw in read_json_lines(self.path) if isinstance(raw, dict)]
