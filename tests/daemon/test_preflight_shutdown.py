"""A failed preflight: reported in /status at once, and the instance ended after the grace (manual clock)."""

from __future__ import annotations

import pytest
from falcon import testing
from hypothesis import given
from hypothesis import strategies as st

from soong_daemon import preflight, rules
from soong_daemon.api import LambdaApi
from soong_daemon.app import create_app
from soong_daemon.clock import iso, wall_to_clock
from soong_daemon.terminator import Backoff, Terminator
from tests.daemon.conftest import (
    API_KEY,
    LAUNCH,
    TOKEN,
    QuietNotifier,
    SettableSource,
    instance_status,
    launch_instance,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}
REASON = "NVIDIA driver 535.129.03 is older than 580.65.06, which SGLang 0.5.23 (torch 2.14.1, CUDA 13.0) needs"


def log_phase(config, at: float, phase: str, message: str) -> None:
    with open(config.boot_log, "a", encoding="utf-8") as handle:
        handle.write(f"{iso(at)} phase={phase} {message}\n")


def status(app) -> dict:
    return testing.TestClient(app).simulate_get("/status", headers=AUTH).json


def shutdown(app):
    return app.parts.store.read()["shutdown"]


def test_a_failed_preflight_shows_at_once_and_ends_the_instance_after_the_grace(make_app, clock):
    app = make_app(warn_minutes=15)
    log_phase(app.parts.config, clock.t - 30, "daemon-up", "status daemon answers on 127.0.0.1:8080")
    assert status(app)["preflight"]["status"] == "pending"
    failed = clock.t
    log_phase(app.parts.config, failed, "preflight-failed", REASON)
    seen = status(app)["preflight"]  # before any enforcer check
    assert seen == {"status": "failed", "reason": REASON, "failed_at": iso(failed),
                    "terminate_at": iso(failed + 600), "grace_minutes": 10.0}
    app.enforcer.tick()
    assert shutdown(app) is None
    metrics = testing.TestClient(app).simulate_get("/metrics", headers=AUTH).text
    assert "\nsoong_preflight_failed 1" in metrics
    doc = status(app)
    assert doc["next_shutdown"] == {"at": iso(failed + 600), "reason": rules.PREFLIGHT_FAILED}
    warnings = [payload for _, payload in app.parts.notifier.messages if payload["event"] == "warning"]
    assert warnings and warnings[0]["reason"] == rules.PREFLIGHT_FAILED
    clock.advance(599)
    app.enforcer.tick()
    assert shutdown(app) is None and app.parts.terminator.calls == []
    clock.advance(1)
    app.enforcer.tick()
    decided = shutdown(app)
    assert decided["reason"] == rules.PREFLIGHT_FAILED and REASON in decided["detail"]
    assert app.parts.terminator.calls == [app.parts.config.instance_id]
    assert status(app)["shutdown"]["reason"] == "preflight_failed"
    assert status(app)["preflight"]["status"] == "failed"


def test_the_grace_counts_from_the_failure_line_not_from_when_the_daemon_saw_it(make_app, clock):
    app = make_app(preflight_grace_minutes=5)
    log_phase(app.parts.config, clock.t - 240, "preflight-failed", REASON)
    app.enforcer.tick()
    assert shutdown(app) is None
    clock.advance(59)
    app.enforcer.tick()
    assert shutdown(app) is None
    clock.advance(1)
    app.enforcer.tick()
    assert shutdown(app)["reason"] == rules.PREFLIGHT_FAILED


def test_a_passed_preflight_changes_nothing(make_app, clock):
    app = make_app(idle_timeout_minutes=600)
    log_phase(app.parts.config, clock.t, "preflight-ok", "Python 3.12, glibc 2.39, NVIDIA driver 580.95.05")
    app.parts.activity_sources[0].status = "active"
    for _ in range(6):
        clock.advance(3600)
        if clock.t >= app.parts.store.read()["lease_end"]:
            break
        app.enforcer.tick()
        assert shutdown(app) is None
    assert status(app)["preflight"]["status"] == "ok"
    assert "NVIDIA driver 580.95.05" in status(app)["preflight"]["summary"]


def test_a_zero_grace_ends_it_at_the_first_check(make_app, clock):
    app = make_app(preflight_grace_minutes=0)
    log_phase(app.parts.config, clock.t, "preflight-failed", REASON)
    app.enforcer.tick()
    assert shutdown(app)["reason"] == rules.PREFLIGHT_FAILED


def test_the_hard_limit_still_comes_first(make_app, clock):
    app = make_app(hard_limit_hours=1, lease_hours=1)
    clock.t = app.parts.store.read()["hard_limit_at"] - 60
    log_phase(app.parts.config, clock.t, "preflight-failed", REASON)
    clock.advance(60)
    app.enforcer.tick()
    assert shutdown(app)["reason"] == rules.HARD_LIMIT


def test_only_the_first_failure_counts_and_a_future_line_counts_from_now(make_app, clock):
    app = make_app()
    log_phase(app.parts.config, clock.t + 3600, "preflight-failed", "first")
    log_phase(app.parts.config, clock.t + 7200, "preflight-failed", "second")
    app.enforcer.tick()
    recorded = app.parts.store.read()["preflight"]
    assert recorded == {"status": "failed", "failed_at": clock.t, "reason": "first"}


def test_the_grace_runs_on_a_sped_up_clock(make_config):
    config = make_config(time_scale=60)
    anchor = LAUNCH.timestamp()
    assert wall_to_clock(anchor + 10, 60, anchor) == anchor + 600
    assert preflight.failed_at(config, iso(anchor + 10)) == anchor + 600
    assert preflight.failed_at(make_config(), iso(anchor + 10)) == anchor + 10
    assert preflight.failed_at(config, "not a time") is None


def test_a_bad_grace_is_refused(make_config):
    from soong_daemon.config import ConfigError

    with pytest.raises(ConfigError, match="preflight_grace_minutes"):
        make_config(preflight_grace_minutes=-1)
    assert make_config().preflight_grace_minutes == 10.0


@given(deadline=st.floats(0, 10_000), now=st.floats(0, 10_000))
def test_the_preflight_rule_fires_exactly_at_its_deadline(deadline, now):
    limits = rules.Limits(hard_limit_at=1e9, lease_end=1e9, idle_timeout=1e9, idle_since=0.0,
                          preflight_deadline=deadline)
    verdict = rules.evaluate(now, limits)
    assert verdict.shutdown == (now >= deadline)
    assert verdict.next_reason == rules.PREFLIGHT_FAILED
    without = rules.evaluate(now, rules.Limits(1e9, 1e9, 1e9, 0.0))
    assert not without.shutdown and without.next_reason != rules.PREFLIGHT_FAILED


def test_a_failed_preflight_is_terminated_and_verified_through_the_api(make_config, clock, emulator):
    instance_id = launch_instance(emulator, "soong-preflight-fails")
    config = make_config(instance_id="", instance_name="soong-preflight-fails", provider_api_url=emulator.url,
                         preflight_grace_minutes=1)
    api = LambdaApi(config.provider_api_url, lambda: API_KEY, min_interval=0)
    app = create_app(config, clock=clock, api=api, terminator=Terminator(api, backoff=Backoff(0.01, 0.05)),
                     activity_sources=[SettableSource()], notifier=QuietNotifier(), gpu_probe=lambda: None)
    log_phase(config, clock.t, "preflight-failed", REASON)
    app.enforcer.tick()
    assert instance_status(emulator, instance_id) == "active"
    clock.advance(60)
    app.enforcer.tick()
    assert instance_status(emulator, instance_id) in {"terminating", "terminated", "gone"}
    assert app.parts.store.read()["termination"]["outcome"] == "verified"
    assert status(app)["shutdown"]["reason"] == rules.PREFLIGHT_FAILED
