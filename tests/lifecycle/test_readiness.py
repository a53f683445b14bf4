"""The readiness steps, on the in-process emulator with its clock moved by hand and a scripted daemon probe."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

import soong.plugins.lambda_cloud
from soong.core.context import Context
from soong.core.plugins import PluginHost, PluginInfo
from soong.core.readiness import (
    InstanceFailed,
    ReadyTimeout,
    check_once,
    ready_timeout_seconds,
    sglang_state,
    wait_until_ready,
)
from soong.plugins.lambda_cloud.emulator import EmulatorClock, RateLimit, create_app
from soong.testing.emulator import serve_in_thread
from tests.lifecycle.conftest import FAST


def boot(*phases):
    return {"boot": {"phase": phases[-1] if phases else None, "phases": [{"phase": p} for p in phases]}}


class ScriptedProbe:
    """What the daemon and SGLang answer, set by the test."""

    def __init__(self):
        self.status = None
        self.sglang = False

    def daemon_status(self, instance):
        return self.status

    def sglang_ready(self, instance):
        return self.sglang


@pytest.fixture
def world(monkeypatch):
    clock = EmulatorClock()
    clock.freeze()
    app = create_app(api_key="k-readiness", clock=clock, boot_delay=60.0, terminate_delay=0, gone_delay=0,
                     general_limit=RateLimit(0, 0), launch_limit=RateLimit(0, 0))
    with serve_in_thread(app) as emu:
        for key, value in {**FAST, "SOONG_LAMBDA_API_URL": emu.url, "LAMBDA_API_KEY": emu.api_key}.items():
            monkeypatch.setenv(key, value)
        host = PluginHost(discover=False, env={})
        host.add_plugin(soong.plugins.lambda_cloud, PluginInfo("lambda", builtin=True))
        provider = Context(env=dict(os.environ), plugin_host=host).provider("lambda")
        emu.add_ssh_key("me")
        answer = emu.api("POST", "/instance-operations/launch", {
            "region_name": "us-east-1", "instance_type_name": "gpu_1x_a10", "ssh_key_names": ["me"]})
        yield emu, provider, answer.json()["data"]["instance_ids"][0]


def test_steps_follow_the_provider_then_the_daemon_then_sglang(world):
    emu, provider, instance_id = world
    probe = ScriptedProbe()
    assert check_once(provider, instance_id, probe, elapsed=0, sglang=True).phase == "booting"
    emu.advance(61)
    assert check_once(provider, instance_id, probe, elapsed=1, sglang=True).phase == "active"
    probe.status = boot("daemon-up")
    assert check_once(provider, instance_id, probe, elapsed=2, sglang=True).phase == "daemon"
    probe.status = boot("daemon-up", "sglang-loading", "n8n-ready")
    seen = check_once(provider, instance_id, probe, elapsed=3, sglang=True)
    assert seen.phase == "loading" and seen.daemon_phase == "n8n-ready"
    probe.sglang = True
    assert check_once(provider, instance_id, probe, elapsed=4, sglang=True).phase == "ready"
    probe.sglang = False
    assert check_once(provider, instance_id, probe, elapsed=5, sglang=False).phase == "ready"


def test_a_gated_model_waiting_for_its_token_says_so(world):
    emu, provider, instance_id = world
    emu.advance(61)
    probe = ScriptedProbe()
    probe.status = boot("daemon-up", "preflight-ok", "sglang-installing", "sglang-waiting-token")
    seen = check_once(provider, instance_id, probe, elapsed=1, sglang=True)
    assert seen.phase == "daemon" and seen.detail == "SGLang waits for the Hugging Face token"
    probe.status = boot("daemon-up", "sglang-waiting-token", "hf-token-delivered", "sglang-loading")
    seen = check_once(provider, instance_id, probe, elapsed=2, sglang=True)
    assert seen.phase == "loading" and seen.detail == ""


@pytest.mark.parametrize("status, match", [
    (boot("daemon-up", "sglang-installing", "sglang-failed"), "sglang-failed"),
    ({**boot("daemon-up"), "shutdown": {"reason": "idle", "detail": "no requests"}}, "shutting it down"),
])
def test_a_failed_service_or_a_decided_shutdown_ends_the_wait(world, status, match):
    emu, provider, instance_id = world
    emu.advance(61)
    probe = ScriptedProbe()
    probe.status = status
    with pytest.raises(InstanceFailed, match=match):
        check_once(provider, instance_id, probe, elapsed=0, sglang=True)


def test_an_instance_that_ends_while_waited_for_is_reported(world):
    emu, provider, instance_id = world
    emu.api("POST", "/instance-operations/terminate", {"instance_ids": [instance_id]})
    emu.advance(1)
    with pytest.raises(InstanceFailed, match="will not become ready"):
        check_once(provider, instance_id, ScriptedProbe(), elapsed=0, sglang=True)


def test_the_wait_times_out_on_its_own_clock_without_sleeping_for_real(world):
    emu, provider, instance_id = world
    now = [0.0]
    seen = []

    def sleep(seconds):
        now[0] += seconds

    with pytest.raises(ReadyTimeout) as caught:
        wait_until_ready(provider, instance_id, ScriptedProbe(), timeout=30, poll=5, on_progress=seen.append,
                         clock=lambda: now[0], sleep=sleep)
    assert caught.value.progress.phase == "booting"
    assert len(seen) == 7 and seen[-1].elapsed == 30


@given(gpus=st.integers(min_value=1, max_value=8))
def test_the_default_timeout_grows_with_the_gpu_count(gpus):
    class Config:
        def get(self, key):
            return None

    assert ready_timeout_seconds(Config(), gpus) == (12 + 2 * gpus) * 60
    assert ready_timeout_seconds(Config(), 8) >= 25 * 60


def test_sglang_state_is_the_latest_sglang_phase():
    assert sglang_state(None) is None
    assert sglang_state(boot("daemon-up")) is None
    assert sglang_state(boot("daemon-up", "sglang-installing", "sglang-loading", "n8n-ready")) == "loading"
    assert sglang_state(boot("sglang-loading", "sglang-ready")) == "ready"
