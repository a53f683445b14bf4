"""End to end through the ``soong`` executable and the sandbox: every step a subprocess, nothing faked.

Each test brings up its own sandbox (its own HOME, so its own emulator, host, ledger
and state) and always takes it down; an autouse check fails a test that leaves a
sandbox process behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from soong.testing.sandbox import kill_sandbox_processes, sandbox_processes
from tests.conftest import VENV_BIN

pytestmark = pytest.mark.slow
SANDBOX = ("--profile", "sandbox")


@pytest.fixture(autouse=True)
def no_process_left():
    yield
    leftovers = kill_sandbox_processes()
    assert not leftovers, f"sandbox processes were left running: {leftovers}"


@pytest.fixture
def sandbox(run_soong):
    def up(*flags):
        result = run_soong("sandbox", "up", "--boot-delay", "1", *flags, timeout=120)
        assert result.returncode == 0, result.stderr

    yield up
    run_soong("sandbox", "down", timeout=120)


def _json(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _wait_for_history(run_soong, instance_ids, timeout=90.0):
    """Poll ``status`` and ``history`` until every instance has ended; return the history rows by id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_soong(*SANDBOX, "status", "-f", "json")  # reconciles the ledger with the emulator
        rows = {row["Instance ID"]: row for row in _json(run_soong(*SANDBOX, "history", "-f", "json"))}
        if all(rows.get(i, {}).get("Ended by") for i in instance_ids):
            return rows
        time.sleep(0.5)
    raise AssertionError(f"instances still running after {timeout}s: {rows}")


def test_demo_runs_the_whole_job(run_soong):
    result = run_soong("demo", "--time-scale", "240", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    out = result.stdout
    for typed in ("$ soong sandbox up", "$ soong --profile sandbox start --model llama-3.1-8b -y",
                  "$ soong --profile sandbox status", "$ curl -s http://127.", "$ soong --profile sandbox extend 1 -y",
                  "$ soong --profile sandbox history", "$ soong sandbox down"):
        assert typed in out, f"the demo did not show {typed!r}"
    assert "stand-in, not a real model] you said: Hello from the soong demo!" in out
    assert "terminated by its own daemon" in out
    assert not sandbox_processes()
    # the instance its daemon ended was reconciled: no stale tunnel record is left behind
    assert _json(run_soong(*SANDBOX, "tunnel", "status", "-f", "json")) == []


def test_lease_and_hard_limit_shutdowns(run_soong, sandbox):
    sandbox("--time-scale", "600")
    no_idle = {"SOONG_DEFAULTS_IDLE_TIMEOUT_MINUTES": "480"}
    lease = run_soong(*SANDBOX, "start", "-y", "--no-wait", "--no-tunnel", "--hours", "0.25", env=no_idle)
    assert lease.returncode == 0, lease.stderr
    hard = run_soong(*SANDBOX, "start", "-y", "--no-wait", "--no-tunnel", "--hours", "0.5",
                     env={**no_idle, "SOONG_DEFAULTS_HARD_LIMIT_HOURS": "0.5"})
    assert hard.returncode == 0, hard.stderr
    history = _json(run_soong(*SANDBOX, "history", "-f", "json"))
    by_lease = {row["Instance ID"]: row for row in history}
    assert len(by_lease) == 2
    lease_id = next(i for i, row in by_lease.items() if row["Launched"] == min(r["Launched"] for r in history))
    hard_id = next(i for i in by_lease if i != lease_id)

    rows = _wait_for_history(run_soong, [lease_id, hard_id])
    assert rows[lease_id]["Ended by"] == "lease"
    assert rows[hard_id]["Ended by"] == "hard_limit"
    assert _json(run_soong(*SANDBOX, "status", "-f", "json")) == []  # nothing is billing in the emulator


def test_status_and_stop_at_the_same_time(run_soong, sandbox):
    sandbox()
    started = run_soong(*SANDBOX, "start", "-y", "--model", "llama-3.1-8b", timeout=180)
    assert started.returncode == 0, started.stderr
    soong = str(VENV_BIN / "soong")
    procs = [subprocess.Popen([soong, *SANDBOX, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args in (("stop", "-y"), ("status", "-f", "json"), ("status", "-f", "json"))]
    results = [(p.args, *p.communicate(timeout=180), p.returncode) for p in procs]
    for args, _out, err, code in results:
        assert code == 0, f"{args}: {err}"
        assert "Traceback" not in err
    assert _json(run_soong(*SANDBOX, "status", "-f", "json")) == []
    [row] = _json(run_soong(*SANDBOX, "history", "-f", "json"))
    assert row["Ended by"] == "user" and row["State"] == "ended"
    # before terminating, stop sent the daemon's activity summary to the cost sinks
    from soong.core.context import Context
    from soong.core.ledger import Ledger

    [activity] = Ledger.for_context(Context(profile="sandbox", env=dict(os.environ))).events(
        instance_id=row["Instance ID"], kind="activity")
    assert "activity_counts" in activity.data["activity"]
    assert _json(run_soong(*SANDBOX, "tunnel", "status", "-f", "json")) == []
