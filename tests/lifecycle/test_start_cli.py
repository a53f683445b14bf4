"""``soong start`` as a user runs it (a subprocess) against the emulator: choices, capacity, cost, budget, refusals.

These tests launch with --no-wait; the wait for a ready model is covered with a real
daemon in test_lifecycle_e2e.py.
"""

from __future__ import annotations

import threading
import time

from tests.conftest import TEST_SECRETS
from tests.lifecycle.conftest import ledger, live_instances


def no_secret(result):
    text = result.stdout + result.stderr
    return all(value not in text for value in TEST_SECRETS.values())


def test_dry_run_prints_request_and_bootstrap_without_secrets_and_launches_nothing(run_soong, soong_env, emu):
    result = run_soong("start", "--model", "mistral-7b", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert '"instance_type_name": "gpu_1x_a10"' in result.stdout
    assert '"ssh_key_names": [\n    "me"\n  ]' in result.stdout
    assert "Content-Type: multipart/mixed" in result.stdout and "#cloud-config" in result.stdout
    assert no_secret(result)
    assert emu.instances() == []
    assert ledger().records(include_failed=True) == []


def test_without_a_terminal_and_without_yes_nothing_is_launched(run_soong, soong_env, emu):
    result = run_soong("start", "--no-wait")
    assert result.returncode == 9, result.stderr
    assert "$0.75/h" in result.stderr and "worst case" in result.stderr
    assert emu.instances() == []
    assert ledger().records(include_failed=True) == []


def test_launch_is_recorded_with_its_id_and_price(run_soong, soong_env, emu):
    result = run_soong("start", "-y", "--no-wait", "--hours", "2")
    assert result.returncode == 0, result.stderr
    [inst] = live_instances(emu)
    [record] = ledger().records()
    assert record.instance_id == inst["id"] and record.launch_name == inst["name"]
    assert record.state == "running" and record.price_cents_per_hour == 75
    assert (record.lease_ends_at - record.intent_at).total_seconds() == 2 * 3600
    assert inst["id"] in result.stderr
    assert f"soong stop --instance-id {inst['id']}" in result.stdout


def test_configured_region_without_capacity_fails_over(run_soong, soong_env, emu):
    emu.set_capacity("gpu_1x_a10", "us-west-1", 0)
    result = run_soong("start", "-y", "--no-wait", "--gpu", "gpu_1x_a10",
                       env={"SOONG_LAMBDA_DEFAULT_REGION": "us-west-1"})
    assert result.returncode == 0, result.stderr
    assert "instead of lambda.default_region us-west-1" in result.stderr
    [inst] = live_instances(emu)
    assert inst["region"] == "us-east-1"


def test_requested_region_without_capacity_is_refused_naming_regions_with_some(run_soong, soong_env, emu):
    emu.set_capacity("gpu_1x_a10", "us-west-1", 0)
    result = run_soong("start", "--no-wait", "--gpu", "gpu_1x_a10", "--region", "us-west-1")
    assert result.returncode == 7, result.stderr  # refused before any question about the cost
    assert "us-east-1" in result.stderr and "--retry-until-up" in result.stderr
    assert emu.instances() == []
    assert ledger().records(include_failed=True) == []


def test_retry_until_up_waits_for_capacity_then_launches(run_soong, soong_env, emu):
    for region in ("us-east-1", "us-west-1"):
        emu.set_capacity("gpu_1x_a10", region, 0)
    emu.clear_requests()

    def add_capacity_after_two_checks():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            checks = [e for e in emu.requests() if e["path"].endswith("/instance-types")]
            if len(checks) >= 3:  # the choice, then two waits
                emu.set_capacity("gpu_1x_a10", "us-west-1", 1)
                return
            time.sleep(0.05)

    helper = threading.Thread(target=add_capacity_after_two_checks)
    helper.start()
    result = run_soong("start", "-y", "--no-wait", "--gpu", "gpu_1x_a10", "--retry-until-up=1m")
    helper.join()
    assert result.returncode == 0, result.stderr
    assert "waiting for capacity: gpu_1x_a10 in any region" in result.stderr
    [inst] = live_instances(emu)
    assert inst["region"] == "us-west-1"


def test_retry_until_up_gives_up_after_its_duration(run_soong, soong_env, emu):
    for region in ("us-east-1", "us-west-1"):
        emu.set_capacity("gpu_1x_a10", region, 0)
    result = run_soong("start", "-y", "--no-wait", "--gpu", "gpu_1x_a10", "--retry-until-up=1s")
    assert result.returncode == 7, result.stderr
    assert "after waiting" in result.stderr
    assert emu.instances() == []


def test_gpu_that_cannot_hold_the_model_is_refused_unless_forced(run_soong, soong_env, emu):
    refused = run_soong("start", "-y", "--no-wait", "--model", "llama-3.1-70b", "--gpu", "gpu_1x_a10")
    assert refused.returncode == 2, refused.stderr
    assert "cannot serve llama-3.1-70b" in refused.stderr and "--force" in refused.stderr
    assert emu.instances() == []
    forced = run_soong("start", "-y", "--no-wait", "--model", "llama-3.1-70b", "--gpu", "gpu_1x_a10", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "because of --force" in forced.stderr
    assert len(live_instances(emu)) == 1


def test_budget_cap_refuses_unless_over_budget(run_soong, soong_env, emu):
    capped = {"SOONG_BUDGET_MAX_HOURLY_USD": "0.50"}
    refused = run_soong("start", "-y", "--no-wait", env=capped)
    assert refused.returncode == 10, refused.stderr
    assert "max_hourly_usd" in refused.stderr and emu.instances() == []
    allowed = run_soong("start", "-y", "--no-wait", "--over-budget", env=capped)
    assert allowed.returncode == 0, allowed.stderr
    assert len(live_instances(emu)) == 1


def test_a_launch_the_api_refuses_is_recorded_as_failed(run_soong, soong_env, emu):
    emu.add_fault(path="/instance-operations/launch", action="error", status=400,
                  code="instance-operations/launch/insufficient-capacity", times=1)
    result = run_soong("start", "-y", "--no-wait")
    assert result.returncode == 7, result.stderr
    [record] = ledger().records(include_failed=True)
    assert record.state == "failed" and record.instance_id is None
    assert emu.instances() == []


def test_an_ambiguous_launch_is_found_by_its_name_and_recorded_once(run_soong, soong_env, emu):
    emu.add_fault(path="/instance-operations/launch", action="ambiguous", then="drop", times=1)
    result = run_soong("start", "-y", "--no-wait")
    assert result.returncode == 0, result.stderr
    [inst] = live_instances(emu)
    [record] = ledger().records(include_failed=True)
    assert record.instance_id == inst["id"] and record.state == "running"
    assert [e for e in emu.requests() if e["path"].endswith("/launch")].__len__() == 1


def test_retry_until_up_tries_again_after_a_launch_refused_for_capacity(run_soong, soong_env, emu):
    emu.add_fault(path="/instance-operations/launch", action="error", status=400,
                  code="instance-operations/launch/insufficient-capacity", times=1)
    result = run_soong("start", "-y", "--no-wait", "--retry-until-up=30s")
    assert result.returncode == 0, result.stderr
    assert "the launch was refused" in result.stderr
    [inst] = live_instances(emu)
    states = sorted(r.state for r in ledger().records(include_failed=True))
    assert states == ["failed", "running"]
    assert [r.instance_id for r in ledger().records() if r.state == "running"] == [inst["id"]]


OVERRIDING_MODELS = '''
from soong import hookimpl
from soong.core.types import ModelSpec


@hookimpl
def soong_register_models(register):
    register(ModelSpec(id="mistral-7b", hf_path="acme/mistral-7b-tuned", params_billion=7.25, precision="bf16",
                       layers=32, attention_heads=32, kv_heads=8, head_dim=128, max_context=32768,
                       default_context=8192), override=True)
'''


def test_start_says_in_one_line_when_a_plugin_replaced_the_catalog_entry(run_soong, soong_env, emu, tmp_path):
    from tests.plugin_site import add_distribution

    site = add_distribution(tmp_path / "site", "soong-acme-models", "3.1", {"soong": ["acme-models = acme_models"]},
                            {"acme_models": OVERRIDING_MODELS})
    result = run_soong("start", "--model", "mistral-7b", "--dry-run", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    notes = [line for line in (result.stdout + result.stderr).splitlines() if "acme-models" in line]
    assert len(notes) == 1 and "soong-acme-models 3.1" in notes[0] and "replaces the built-in" in notes[0]
    assert "acme/mistral-7b-tuned" in result.stdout
    plain = run_soong("start", "--model", "mistral-7b", "--dry-run")
    assert "replaces the built-in" not in plain.stdout + plain.stderr
