"""The client-side limiter: spacing, gaps before pending launches, a shared file, damaged state."""

from __future__ import annotations

import multiprocessing
import time

from hypothesis import given
from hypothesis import strategies as st

from soong.plugins.lambda_cloud.ratelimit import RateLimiter


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_requests_are_spaced_and_launches_wait_longer(tmp_path):
    clock = FakeClock()
    limiter = RateLimiter(tmp_path / "l.json", general_interval=1.0, launch_interval=12.0, clock=clock)
    assert limiter.reserve(launch=True) == 0.0
    assert limiter.reserve(launch=True) == 12.0
    # a plain request takes the free gap right after the first launch, not the slot after the pending one
    assert limiter.reserve() == 1.0
    clock.now += 30
    assert limiter.reserve() == 0.0


@given(steps=st.lists(st.tuples(st.booleans(), st.floats(0, 3)), min_size=1, max_size=40))
def test_reserved_slots_never_violate_the_intervals(steps):
    clock = FakeClock()
    limiter = RateLimiter(None, general_interval=1.0, launch_interval=5.0, clock=clock)
    general, launches = [], []
    for is_launch, advance in steps:
        clock.now += advance
        start = clock.now + limiter.reserve(launch=is_launch)
        assert start >= clock.now
        general.append(start)
        if is_launch:
            launches.append(start)
    general.sort()
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(general, general[1:], strict=False))
    assert all(b - a >= 5.0 - 1e-9 for a, b in zip(launches, launches[1:], strict=False))


def test_the_next_slot_counts_from_the_last_answer(tmp_path):
    """A request answered late (it queued on the way) pushes the next slot: arrivals stay spaced."""
    clock = FakeClock()
    limiter = RateLimiter(tmp_path / "l.json", general_interval=1.0, launch_interval=12.0, clock=clock)
    assert limiter.reserve(launch=True) == 0.0
    clock.now += 5.0  # the answer took 5 s
    limiter.complete(launch=True)
    assert limiter.reserve() == 1.0
    assert limiter.reserve(launch=True) == 12.0


def test_damaged_or_far_future_state_is_recovered(tmp_path):
    path = tmp_path / "l.json"
    path.write_text("{not json")
    clock = FakeClock()
    assert RateLimiter(path, clock=clock).reserve() == 0.0
    path.write_text('{"general": [9e12], "launch": 9e12}')
    assert RateLimiter(path, clock=clock).reserve(launch=True) == 0.0
    assert (path.stat().st_mode & 0o777) == 0o600


def _worker(path, count, out):
    seen = []

    def clock():
        seen.append(time.time())
        return seen[-1]

    limiter = RateLimiter(path, general_interval=0.02, launch_interval=0.1, clock=clock)
    for _ in range(count):
        wait = limiter.reserve()
        out.put(seen[-1] + wait)  # the slot this process was given


def test_processes_share_the_budget(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(tmp_path / "shared.json", 10, out)) for _ in range(3)]
    for proc in procs:
        proc.start()
    slots = sorted(out.get(timeout=60) for _ in range(30))
    for proc in procs:
        proc.join(60)
    gaps = [b - a for a, b in zip(slots, slots[1:], strict=False)]
    assert min(gaps) >= 0.02 - 1e-6
