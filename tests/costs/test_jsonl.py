"""Append-only JSON Lines: private file, whole lines under concurrency, recovery from a torn line."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from soong.core.jsonl import append_json_line, read_json_lines

ROOT = Path(__file__).resolve().parents[2]


def test_private_file_and_one_line_per_record(tmp_path):
    path = tmp_path / "sub" / "events.jsonl"
    append_json_line(path, {"a": 1, "text": "line\nbreak"})
    append_json_line(path, {"a": 2})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().count("\n") == 2
    assert read_json_lines(path) == [{"a": 1, "text": "line\nbreak"}, {"a": 2}]


def test_a_torn_last_line_is_closed_and_skipped(tmp_path):
    path = tmp_path / "events.jsonl"
    append_json_line(path, {"a": 1})
    with open(path, "ab") as handle:
        handle.write(b'{"a": 2, "cut sho')  # what a kill -9 mid-write leaves
    append_json_line(path, {"a": 3})
    assert read_json_lines(path) == [{"a": 1}, {"a": 3}]


def test_existing_content_is_never_rewritten(tmp_path):
    path = tmp_path / "events.jsonl"
    append_json_line(path, {"a": 1})
    before = path.read_bytes()
    append_json_line(path, {"a": 2})
    assert path.read_bytes().startswith(before)


WRITER = """
import sys
from soong.core.jsonl import append_json_line
for i in range(int(sys.argv[3])):
    append_json_line(sys.argv[1], {"writer": int(sys.argv[2]), "i": i, "pad": "x" * 5000})
"""


def test_concurrent_writers_never_interleave(tmp_path):
    path = tmp_path / "events.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), "60"], cwd=ROOT) for w in range(4)]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    lines = path.read_text().splitlines()
    assert len(lines) == 240
    records = [json.loads(line) for line in lines]  # every line parses: no interleaving
    for w in range(4):
        assert [r["i"] for r in records if r["writer"] == w] == list(range(60))
