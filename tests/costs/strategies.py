"""Hypothesis strategies for ledger records."""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

from soong.core.ledger import LedgerRecord

BASE = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
minutes = st.integers(min_value=0, max_value=60 * 24 * 120)  # four months of minutes


@st.composite
def records(draw, open_allowed: bool = True) -> LedgerRecord:
    start = BASE + dt.timedelta(minutes=draw(minutes))
    hard = start + dt.timedelta(hours=draw(st.sampled_from([0.5, 2, 4, 8])))
    state = draw(st.sampled_from(["running", "ended", "ended", "failed"] if open_allowed else ["ended", "failed"]))
    ended = None
    if state in ("ended", "failed"):
        ended = start + dt.timedelta(minutes=draw(st.integers(min_value=0, max_value=60 * 8)))
    index = draw(st.integers(min_value=0, max_value=10**9))
    return LedgerRecord(
        launch_name=f"n{index}", instance_id=f"i{index}", provider="lambda",
        instance_type=draw(st.sampled_from(["gpu_1x_a10", "gpu_8x_h100"])), gpu=None, region="us-east-1",
        price_cents_per_hour=draw(st.integers(min_value=0, max_value=5000)),
        model=draw(st.sampled_from([None, "llama-3.1-8b", "qwen-72b"])), state=state, intent_at=start, launched_at=start,
        lease_ends_at=min(start + dt.timedelta(hours=4), hard), hard_limit_at=hard, ended_at=ended,
        end_reason="user" if state == "ended" else None,
    )


moments = minutes.map(lambda m: BASE + dt.timedelta(minutes=m))
