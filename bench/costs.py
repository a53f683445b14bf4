#!/usr/bin/env python3
"""Cost-path benchmark: what the ledger, the emitter and ``soong history`` cost, each against a baseline.

* ledger: one launch recorded (intent + id + termination, three transactions with
  fsync) against one fsync-ed JSON line append;
* emitter: one event through both built-in sinks (threads, SQLite, JSONL) against
  the same plain append;
* ``soong history --offline`` over a ledger of 1000 instances against ``soong --help``.

Run with the venv's python (nothing touches your real profile):

    .venv/bin/python bench/costs.py [--runs 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from timing import median_wall  # bench/timing.py (this folder is on sys.path when run as a script)

BIN = Path(sys.executable).parent


def per_call(fn, runs: int) -> float:
    """Median seconds of ``fn(i)`` over ``runs`` calls."""
    times = []
    for i in range(runs):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="soong-bench-") as tmp:
        home = Path(tmp)
        env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "XDG_STATE_HOME": str(home / "state"),
               "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache")}
        os.environ.update(env)
        from soong.core.context import Context
        from soong.core.costs import CostEmitter, launched_event
        from soong.core.jsonl import append_json_line
        from soong.core.ledger import Ledger

        context = Context(env=env)
        ledger = Ledger.for_context(context)
        now = dt.datetime.now(dt.timezone.utc)
        baseline = per_call(lambda i: append_json_line(home / "baseline.jsonl", {"i": i, "pad": "x" * 300}), args.runs)

        def one_launch(i: int) -> None:
            name = f"bench-{i}"
            ledger.record_intent(name, instance_type="gpu_1x_a10", region="us-east-1", price_cents_per_hour=75,
                                 lease_hours=4, hard_limit_hours=8, at=now - dt.timedelta(hours=2))
            ledger.record_launched(name, f"i-{i}", at=now - dt.timedelta(hours=2))
            ledger.record_termination(f"i-{i}", reason="user", at=now - dt.timedelta(hours=1))

        launch = per_call(one_launch, args.runs)
        emitter = CostEmitter(context)
        record = ledger.require("i-0")
        emit = per_call(lambda i: emitter.emit(launched_event(record, now)), args.runs)

        for i in range(args.runs, 1000):
            one_launch(i)
        soong = str(BIN / "soong")
        help_time = median_wall([soong, "--help"], env)
        history = median_wall([soong, "history", "--offline", "--since", "30d", "-f", "json"], env)

    print(f"{'case':<44}{'median ms':>10}{'x baseline':>12}")
    print(f"{'append one fsync-ed JSON line (baseline)':<44}{baseline * 1000:>10.2f}{1.0:>12.2f}")
    print(f"{'ledger: record one launch (3 transactions)':<44}{launch * 1000:>10.2f}{launch / baseline:>12.2f}")
    print(f"{'emit one event to ledger + jsonl':<44}{emit * 1000:>10.2f}{emit / baseline:>12.2f}")
    print(f"{'soong --help (baseline)':<44}{help_time * 1000:>10.1f}{1.0:>12.2f}")
    print(f"{'soong history --offline, 1000 instances':<44}{history * 1000:>10.1f}{history / help_time:>12.2f}")


if __name__ == "__main__":
    main()
