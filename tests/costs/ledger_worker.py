"""A separate process writing to one ledger (run by test_ledger_concurrency)."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

from soong.core.ledger import Ledger


def main(db: str, worker: int, count: int, go: str) -> None:
    ledger = Ledger(db)
    at = dt.datetime(2024, 5, 15, 12, 0, tzinfo=dt.timezone.utc)
    ledger.open_records()  # open (and maybe create) before the start signal
    while not Path(go).exists():
        time.sleep(0.005)
    for i in range(count):
        name = f"w{worker}-{i}"
        ledger.record_intent(name, instance_type="gpu_1x_a10", region="us-east-1", price_cents_per_hour=100,
                             lease_hours=4, hard_limit_hours=8, at=at)
        ledger.record_launched(name, f"i-{worker}-{i}", at=at)
        ledger.record_extension(f"i-{worker}-{i}", lease_ends_at=at + dt.timedelta(hours=6), at=at, hours=2)
        if i % 2:
            ledger.record_termination(f"i-{worker}-{i}", reason="user", at=at + dt.timedelta(hours=1))
    closed = ledger.record_termination("i-shared", reason="watchdog", at=at + dt.timedelta(hours=2))
    print(json.dumps({"closed_shared": closed}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
