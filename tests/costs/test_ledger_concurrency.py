"""Several soong processes writing one ledger at once: nothing lost, nothing closed twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from soong.core.ledger import Ledger
from tests.costs.conftest import T0, launch

ROOT = Path(__file__).resolve().parents[2]
WORKERS, PER_WORKER = 6, 15


@pytest.mark.parametrize("created_first", [True, False], ids=["existing", "created-concurrently"])
def test_several_processes_share_the_ledger(tmp_path, created_first):
    db = tmp_path / "data" / "ledger.sqlite3"
    ledger = Ledger(db)
    if created_first:
        launch(ledger, "shared", T0, instance_id="i-shared")
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-m", "tests.costs.ledger_worker", str(db), str(w), str(PER_WORKER), str(go)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(WORKERS)]
    if not created_first:  # the workers are creating the schema right now, as this process is
        launch(ledger, "shared", T0, instance_id="i-shared")
    go.touch()
    outputs = [p.communicate(timeout=90) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    closed = [json.loads(out)["closed_shared"] for out, _ in outputs]
    assert closed.count(True) == 1  # the shared instance was closed by exactly one process

    records = ledger.records()
    assert len(records) == WORKERS * PER_WORKER + 1
    for w in range(WORKERS):
        for i in range(PER_WORKER):
            record = ledger.require(f"i-{w}-{i}")
            assert record.state == ("ended" if i % 2 else "running")
            assert len(ledger.extensions(f"i-{w}-{i}")) == 1
    assert ledger.require("i-shared").end_reason == "watchdog"
