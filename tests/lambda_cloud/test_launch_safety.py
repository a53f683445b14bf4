"""Money safety under load: ambiguous launches never double-launch or orphan; rate limits are never exceeded.

The emulator's rate limits are scaled down (milliseconds instead of seconds)
and the client's spacing is scaled with them; everything else is the real code
over real loopback sockets.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import textwrap

import pytest

from soong.core import errors as E
from soong.core.types import LaunchRequest
from soong.plugins.lambda_cloud.emulator import RateLimit
from soong.plugins.lambda_cloud.provider import LambdaProvider
from soong.testing.emulator import run_emulator
from tests.lambda_cloud.conftest import make_context

LAUNCH = "/instance-operations/launch"


def max_in_window(times, period):
    """The most events in any half-open window of ``period`` seconds."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - period:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def assert_limits_held(log, general: RateLimit, launch: RateLimit):
    """From the emulator's own log: nothing was refused, and no window held more than allowed."""
    assert [e for e in log if e["rate_limited"]] == []
    assert max_in_window([e["t"] for e in log], general.period) <= general.limit
    assert max_in_window([e["t"] for e in log if e["launch"]], launch.period) <= launch.limit


def test_one_thousand_launches_with_thirty_percent_ambiguous_failures():
    general, launch = RateLimit(1, 0.002), RateLimit(1, 0.004)
    faults = [
        {"path": LAUNCH, "action": "ambiguous", "then": "drop", "probability": 0.15},
        {"path": LAUNCH, "action": "ambiguous", "then": "error", "status": 502, "probability": 0.15 / 0.85},
        {"path": LAUNCH, "action": "error", "status": 503, "probability": 0.05},
    ]
    args = ["--rate-limit", "1/0.002", "--launch-rate-limit", "1/0.004", "--boot-delay", "0", "--terminate-delay", "0",
            "--gone-delay", "0", "--frozen-clock", "--default-capacity", "10000", "--random-seed", "1234"]
    for rule in faults:
        args += ["--fault", json.dumps(rule)]
    with run_emulator(*args) as emu:
        emu.add_ssh_key("me")
        emu.clear_requests()
        provider = LambdaProvider(make_context(
            emu, SOONG_LAMBDA_REQUEST_INTERVAL_SECONDS="0.003", SOONG_LAMBDA_LAUNCH_INTERVAL_SECONDS="0.005"))
        launched, failed, running = [], 0, []
        for n in range(1000):
            try:
                inst = provider.launch(LaunchRequest("gpu_1x_a10", "us-east-1", "me", f"load-{n}"))
            except E.TransientError as exc:
                assert exc.launched is False
                failed += 1
                continue
            launched.append(inst)
            running.append(inst.id)
            if len(running) == 25:  # keeps the instance list short, as a user would
                provider.terminate(running)
                running = []
        provider.terminate(running)
        created = emu.instances()
        log = emu.requests()
        rules = emu.faults()
    ambiguous = rules[0]["fired"] + rules[1]["fired"]
    assert 0.25 * 1000 < ambiguous < 0.35 * 1000
    assert failed == rules[2]["fired"] > 0
    assert len(launched) + failed == 1000
    # exactly one instance per successful launch, and no instance nobody knows about
    assert sorted(i["id"] for i in created) == sorted(i.id for i in launched)
    assert collections.Counter(i["name"] for i in created).most_common(1)[0][1] == 1
    assert len([e for e in log if e["launch"]]) == 1000  # no launch was ever re-sent
    assert_limits_held(log, general, launch)


SNIPPET = textwrap.dedent("""
    import os, sys
    from soong.core.context import Context
    from soong.core.types import LaunchRequest
    from soong.plugins.lambda_cloud.provider import LambdaProvider
    provider = LambdaProvider(Context(env=dict(os.environ)))
    for _ in range(6):
        provider.list_instances()
    provider.launch(LaunchRequest("gpu_1x_a10", "us-east-1", "me", "proc" + sys.argv[1]))
    provider.list_instance_types()
""")


def _run_processes(emu, tmp_path, *, shared: bool, count: int = 3, must_succeed: bool = True,
                   interval: str = "0.06", launch_interval: str = "0.3"):
    procs = []
    for n in range(count):
        env = dict(os.environ)
        env.update({
            "SOONG_LAMBDA_API_URL": emu.url, "LAMBDA_API_KEY": emu.api_key,
            "SOONG_LAMBDA_REQUEST_INTERVAL_SECONDS": interval, "SOONG_LAMBDA_LAUNCH_INTERVAL_SECONDS": launch_interval,
            "SOONG_LAMBDA_RETRY_BASE_SECONDS": "0.01", "SOONG_LAMBDA_LAUNCH_LOOKUP_SECONDS": "0",
            "XDG_STATE_HOME": str(tmp_path / ("state" if shared else f"state{n}")),
        })
        procs.append(subprocess.Popen([sys.executable, "-c", SNIPPET, str(n)], env=env, stderr=subprocess.PIPE,
                                      text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 or not must_succeed, err


@pytest.fixture(scope="module")
def limited_emulator():
    with run_emulator("--rate-limit", "1/0.04", "--launch-rate-limit", "1/0.2", "--boot-delay", "0") as handle:
        handle.add_ssh_key("me")
        yield handle


def test_several_processes_share_one_rate_budget(limited_emulator, tmp_path):
    emu = limited_emulator
    emu.clear_requests()
    # Spacing well above the emulator's limits (0.04 s, 0.2 s): what the shared budget guarantees is the
    # order and spacing of reservations; the time from a reservation to the request reaching the emulator
    # varies with load (a loaded 2-core machine delayed one request by 25 ms past a 20 ms margin).
    _run_processes(emu, tmp_path, shared=True, interval="0.15", launch_interval="0.6")
    log = emu.requests()
    assert len(log) == 3 * 9 and len(emu.instances()) >= 3
    assert_limits_held(log, RateLimit(1, 0.04), RateLimit(1, 0.2))


def test_without_the_shared_budget_the_emulator_refuses_requests(limited_emulator, tmp_path):
    """Control: separate state folders (no shared limiter) do trip the emulator's limit."""
    emu = limited_emulator
    emu.clear_requests()
    _run_processes(emu, tmp_path, shared=False, must_succeed=False)
    assert [e for e in emu.requests() if e["rate_limited"]]


def test_documented_limits_by_default(tmp_path):
    """Out of the box the client spaces requests 1.1 s and launches 12.5 s apart: Lambda's documented
    limits (1/s, 1 per 12 s) plus a margin for network jitter."""
    from soong.plugins.lambda_cloud.ratelimit import RateLimiter

    now = [1000.0]
    limiter = RateLimiter(tmp_path / "limit.json", clock=lambda: now[0], sleep=lambda s: None)
    waits = [limiter.reserve() for _ in range(3)] + [limiter.reserve(launch=True), limiter.reserve(launch=True)]
    assert waits == pytest.approx([0.0, 1.1, 2.2, 3.3, 15.8])
    assert json.loads((tmp_path / "limit.json").read_text())["launch"] == pytest.approx(1000.0 + 15.8 + 12.5)
