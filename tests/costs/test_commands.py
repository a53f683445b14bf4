"""``soong history`` and ``soong cost`` as a user runs them (subprocess, isolated profile, offline)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from soong.core.context import Context
from soong.core.ledger import Ledger
from tests.costs.conftest import launch

NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture
def filled(isolated_env):
    """Three ended instances at known prices and one still running."""
    ledger = Ledger.for_context(Context())
    launch(ledger, "a10-job", NOW - dt.timedelta(hours=3), instance_id="i-a10", price=100, model="llama-3.1-8b", itype="gpu_1x_a10")
    ledger.record_termination("i-a10", reason="user", at=NOW - dt.timedelta(hours=1))  # 2 h x $1
    launch(ledger, "h100-job", NOW - dt.timedelta(hours=6), instance_id="i-h100", price=300, model="qwen-72b", itype="gpu_1x_h100")
    ledger.record_termination("i-h100", reason="hard_limit", at=NOW - dt.timedelta(hours=2))  # 4 h x $3
    launch(ledger, "old-job", NOW - dt.timedelta(days=3), instance_id="i-old", price=100, itype="gpu_1x_a10")
    ledger.record_termination("i-old", reason="idle", at=NOW - dt.timedelta(days=3) + dt.timedelta(hours=1))
    launch(ledger, "live-job", NOW - dt.timedelta(minutes=30), instance_id="i-live", price=100)
    ledger.close()
    return ledger


def rows_json(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_history_lists_what_each_instance_cost_and_how_it_ended(run_soong, filled):
    rows = {r["Instance ID"]: r for r in rows_json(run_soong("history", "--offline", "-f", "json"))}
    assert set(rows) == {"i-a10", "i-h100", "i-old", "i-live"}
    assert (rows["i-a10"]["Hours"], rows["i-a10"]["Cost (USD)"], rows["i-a10"]["Ended by"]) == (2.0, 2.0, "user")
    assert (rows["i-h100"]["Cost (USD)"], rows["i-h100"]["Ended by"], rows["i-h100"]["GPU"]) == (12.0, "hard_limit", "A10")
    assert rows["i-live"]["State"] == "running" and rows["i-live"]["Ended"] == ""
    assert rows["i-a10"]["Model"] == "llama-3.1-8b"


def test_history_since_and_instance_filters(run_soong, filled):
    recent = rows_json(run_soong("history", "--offline", "--since", "1d", "-f", "json"))
    assert "i-old" not in {r["Instance ID"] for r in recent}
    one = rows_json(run_soong("history", "--offline", "--instance-id", "i-h100", "-f", "json"))
    assert [r["Instance ID"] for r in one] == ["i-h100"]


def test_history_csv(run_soong, filled):
    result = run_soong("history", "--offline", "-f", "csv")
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {row["Instance ID"] for row in table} == {"i-a10", "i-h100", "i-old", "i-live"}


def test_history_bad_since_is_one_usage_line(run_soong, filled):
    result = run_soong("history", "--since", "soon")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "duration" in result.stderr


def test_history_without_a_reachable_provider_still_shows_the_ledger(run_soong, filled):
    result = run_soong("history", "-f", "json", env={"SOONG_LAMBDA_API_URL": "http://127.0.0.1:9"})
    assert result.returncode == 0 and len(json.loads(result.stdout)) == 4
    assert "showing the ledger as recorded" in result.stderr and "Traceback" not in result.stderr


def test_cost_by_gpu_and_model(run_soong, filled):
    by_gpu = {r["GPU"]: r for r in rows_json(run_soong("cost", "--offline", "--by", "gpu", "-f", "json"))}
    assert by_gpu["A10"]["Instances"] == 4  # the test ledger records every launch as an A10
    assert by_gpu["total"]["Cost (USD)"] >= 2 + 12 + 1  # plus the live one's half hour
    by_model = {r["Model"]: r for r in rows_json(run_soong("cost", "--offline", "--by", "model", "-f", "json"))}
    assert by_model["qwen-72b"]["Cost (USD)"] == 12.0 and by_model["qwen-72b"]["Hours"] == 4.0


def test_cost_since_excludes_older_spend(run_soong, filled):
    rows = {r["Instance"]: r for r in rows_json(run_soong("cost", "--offline", "--since", "1d", "--by", "instance", "-f", "json"))}
    assert "i-old" not in rows and rows["i-h100"]["Cost (USD)"] == 12.0


def test_cost_table_shows_the_month_and_budget(run_soong, filled):
    result = run_soong("cost", "--offline", env={"SOONG_BUDGET_MONTHLY_USD": "500"})
    assert result.returncode == 0, result.stderr
    assert "This month:" in result.stdout and "projected" in result.stdout
    assert "of $500.00 left this month" in result.stdout
    plain = run_soong("cost", "--offline", "-f", "json")
    json.loads(plain.stdout)  # the summary never breaks machine-readable output
