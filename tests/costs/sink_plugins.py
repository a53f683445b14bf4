"""Small real sinks for the emitter tests: a file, a socket that never answers, a broken constructor."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from soong import hookimpl
from soong.core.interfaces import CostSink


class FileSink(CostSink):
    """Appends events to the file named by ``$TEST_FILE_SINK`` (fails if that path is a folder)."""

    name = "file"

    def emit(self, event):
        """Append one line."""
        with open(Path(self.context.env["TEST_FILE_SINK"]), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(event.to_dict()) + "\n")


def file_sink_events(path: Path) -> list[str]:
    """The event ids a FileSink wrote, in order."""
    if not path.is_file():
        return []
    return [json.loads(line)["data"]["event_id"] for line in path.read_text().splitlines()]


class StallingSink(CostSink):
    """Connects to ``$TEST_STALL_PORT`` and waits for an answer that never comes."""

    name = "stalling"

    def emit(self, event):
        """Block until the peer closes."""
        with socket.create_connection(("127.0.0.1", int(self.context.env["TEST_STALL_PORT"]))) as sock:
            if not sock.recv(1):
                raise ConnectionError("peer closed without answering")


class BrokenInitSink(CostSink):
    """Cannot even be built."""

    name = "broken-init"

    def __init__(self, context):
        raise RuntimeError("misconfigured sink")

    def emit(self, event):
        """Never reached."""


class Plugin:
    """Registers the sinks named in ``names``."""

    def __init__(self, *classes):
        self.classes = classes

    @hookimpl
    def soong_register_cost_sinks(self, register):
        for cls in self.classes:
            register(cls)
