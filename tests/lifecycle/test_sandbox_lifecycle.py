"""The lifecycle in the sandbox, as a newcomer would run it: every command a subprocess, nothing faked.

``soong sandbox up`` starts the emulator and the sandbox host, which gives every
instance a real status daemon and the model stand-in; the lifecycle commands run
unchanged through the ``sandbox`` profile.
"""

from __future__ import annotations

import json
import os

import pytest
import requests

from soong.testing.sandbox import kill_sandbox_processes

pytestmark = pytest.mark.slow

SANDBOX = ("--profile", "sandbox")


@pytest.fixture
def sandbox(run_soong):
    """A sandbox brought up for the test and down after it; no process of it may be left."""
    up = run_soong("sandbox", "up", "--boot-delay", "1", timeout=120)
    assert up.returncode == 0, up.stderr
    try:
        yield
    finally:
        run_soong("sandbox", "down", timeout=120)
        leftovers = kill_sandbox_processes()
        assert not leftovers, f"sandbox processes were left running: {leftovers}"


def _json(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_start_status_extend_stop_in_the_sandbox(run_soong, sandbox):
    started = run_soong(*SANDBOX, "start", "--model", "llama-3.1-8b", "-y", timeout=180)
    assert started.returncode == 0, started.stderr
    api = next(line.split()[-1] for line in started.stdout.splitlines() if "OpenAI-compatible API" in line)
    assert requests.get(api + "/models", timeout=5).status_code == 401  # SGLang asks every client for the key
    [row] = _json(run_soong(*SANDBOX, "status", "-f", "json"))
    hint = f"export OPENAI_API_KEY=$(soong --profile sandbox tunnel api-key --instance-id {row['Instance ID']})"
    assert hint in started.stdout and f"export OPENAI_BASE_URL={api}" in started.stdout
    key = run_soong(*SANDBOX, "tunnel", "api-key", "--instance-id", row["Instance ID"]).stdout.strip()
    assert key and key not in started.stdout + started.stderr
    models = requests.get(api + "/models", timeout=5, headers={"Authorization": f"Bearer {key}"}).json()
    assert models["data"][0]["id"]
    tunnels = run_soong(*SANDBOX, "tunnel", "status")
    assert hint in tunnels.stderr and key not in tunnels.stdout + tunnels.stderr

    assert row["Status"] == "active" and row["SGLang"] == "ready" and row["Tunnel"] == "up"

    extended = _json(run_soong(*SANDBOX, "extend", "1", "-y", "-f", "json"))
    assert extended["Instance ID"] == row["Instance ID"] and extended["Added hours"] == 1.0

    stopped = run_soong(*SANDBOX, "stop", "-y")
    assert stopped.returncode == 0, stopped.stderr
    assert _json(run_soong(*SANDBOX, "status", "-f", "json")) == []

    from soong.core.context import Context
    from soong.core.ledger import Ledger

    [record] = Ledger.for_context(Context(profile="sandbox", env=dict(os.environ))).records(include_failed=True)
    assert record.instance_id == row["Instance ID"] and record.state == "ended" and record.end_reason == "user"
    assert record.final_cost_usd is not None
    [history] = _json(run_soong(*SANDBOX, "history", "-f", "json"))
    assert history["Ended by"] == "user"
