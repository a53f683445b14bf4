"""``soong start`` asks the Hub (a stand-in on loopback) about a gated model before it launches anything."""

from __future__ import annotations

import pytest

from soong.testing.hub import HubStandIn
from soong.testing.net import free_port
from tests.lifecycle.conftest import ledger, live_instances

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
START = ("start", "--model", "llama-3.1-8b", "--gpu", "gpu_1x_a100_sxm4", "-y", "--no-wait")


@pytest.fixture
def hub():
    with HubStandIn(repos={LLAMA: "manual"}, grants={"hf_granted": {LLAMA}, "hf_other": set()}) as stand_in:
        yield stand_in


def launched_nothing(emu) -> bool:
    return live_instances(emu) == [] and ledger().records(include_failed=True) == []


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("soong: error") or "error:" in line]


def test_gated_model_without_a_token_is_refused_before_any_launch(run_soong, soong_env, emu, hub):
    result = run_soong(*START, env={"HF_ENDPOINT": hub.url})
    assert result.returncode == 4, result.stderr
    assert "soong secrets set hf_token" in result.stderr and "Traceback" not in result.stderr
    assert len(error_lines(result)) == 1
    assert launched_nothing(emu)


def test_gated_model_with_a_token_not_granted_is_refused_with_exit_5(run_soong, soong_env, emu, hub):
    result = run_soong(*START, env={"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_other"})
    assert result.returncode == 5, result.stderr
    assert f"{hub.url}/{LLAMA}" in result.stderr and "request access" in result.stderr
    assert "hf_other" not in result.stdout + result.stderr  # the token is never printed
    assert launched_nothing(emu)


def test_gated_model_with_a_granted_token_launches(run_soong, soong_env, emu, hub):
    result = run_soong(*START, env={"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_granted"})
    assert result.returncode == 0, result.stderr
    assert len(live_instances(emu)) == 1
    assert (f"/api/models/{LLAMA}/auth-check", "hf_granted") in hub.requests


def test_the_config_key_wins_over_hf_endpoint(run_soong, soong_env, emu, hub):
    dead = f"http://127.0.0.1:{free_port()}"
    result = run_soong(*START, env={"HF_ENDPOINT": dead, "SOONG_HUGGINGFACE_ENDPOINT": hub.url})
    assert result.returncode == 4, result.stderr
    assert launched_nothing(emu)


def test_an_unreachable_hub_warns_in_one_line_and_launches(run_soong, soong_env, emu):
    result = run_soong(*START, env={"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"})
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "Hugging Face Hub" in line]
    assert len(warnings) == 1 and "without the check" in warnings[0]
    assert len(live_instances(emu)) == 1


def test_the_check_can_be_switched_off(run_soong, soong_env, emu, hub):
    result = run_soong(*START, env={"HF_ENDPOINT": hub.url, "SOONG_HUGGINGFACE_CHECK_GATED": "false"})
    assert result.returncode == 0, result.stderr
    assert hub.requests == []
