"""A failed preflight reported by the daemon ends the wait at once with its own line and exit code."""

from __future__ import annotations

import pytest

from soong.core.errors import EXIT_CODES, EXIT_PREFLIGHT
from soong.core.readiness import InstanceFailed, PreflightFailed, check_once, preflight_failure
from tests.lifecycle.test_readiness import ScriptedProbe, world  # noqa: F401 (fixture)

REASON = "NVIDIA driver 535.129.03 is older than 580.65.06, which SGLang 0.5.23 (torch 2.14.1, CUDA 13.0) needs"


def failed_status(now="2025-03-01T12:01:00Z", terminate_at="2025-03-01T12:11:00Z", **extra):
    return {"now": now, "shutdown": None,
            "boot": {"phase": "preflight-failed", "phases": [{"phase": "daemon-up", "message": "up"},
                                                             {"phase": "preflight-failed", "message": REASON}]},
            "preflight": {"status": "failed", "reason": REASON, "failed_at": "2025-03-01T12:01:00Z",
                          "terminate_at": terminate_at, "grace_minutes": 10.0}, **extra}


def test_exit_code_12_is_its_own_and_documented():
    assert EXIT_PREFLIGHT == 12 and EXIT_CODES[12] == "the instance failed its preflight checks"
    assert PreflightFailed("x").exit_code == 12 and issubclass(PreflightFailed, InstanceFailed)


def test_the_line_is_the_boot_logs_reason_and_says_when_it_ends():
    error = preflight_failure(failed_status(), "i-1")
    assert str(error) == (f"instance i-1 failed its preflight checks: {REASON} "
                          "(the instance terminates itself in 10 minutes; 'soong stop' ends it now)")
    assert "\n" not in str(error)
    one = preflight_failure(failed_status(now="2025-03-01T12:10:30Z"), "i-1")
    assert "terminates itself in 1 minute;" in str(one)
    late = preflight_failure(failed_status(shutdown={"reason": "preflight_failed"}), "i-1")
    assert "the instance is terminating itself now; 'soong stop' ends it now" in str(late)


def test_the_boot_phase_alone_is_enough():
    status = failed_status()
    del status["preflight"]
    error = preflight_failure(status, "i-2")
    assert REASON in str(error) and "after a grace period" in str(error)


@pytest.mark.parametrize("status", [None, {}, {"preflight": {"status": "ok"}, "boot": {"phases": [{"phase": "preflight-ok"}]}},
                                    {"preflight": {"status": "pending"}, "boot": {"phases": [{"phase": "daemon-up"}]}}])
def test_no_failure_no_error(status):
    assert preflight_failure(status, "i-3") is None


def test_check_once_raises_it_as_soon_as_the_daemon_reports_it(world):  # noqa: F811
    emu, provider, instance_id = world
    emu.advance(61)
    probe = ScriptedProbe()
    probe.status = failed_status()
    with pytest.raises(PreflightFailed, match=f"instance {instance_id} failed its preflight checks: NVIDIA driver"):
        check_once(provider, instance_id, probe, elapsed=1, sglang=True)
    # after the grace the daemon has decided the shutdown: still the preflight's line, not a generic one
    probe.status = failed_status(shutdown={"reason": "preflight_failed", "detail": "..."})
    with pytest.raises(PreflightFailed, match="terminating itself now"):
        check_once(provider, instance_id, probe, elapsed=2, sglang=True)
