"""``soong start`` on a sandbox machine whose NVIDIA driver is too old: one line, exit code 12, within a minute."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.test_sandbox_e2e import SANDBOX, no_process_left, sandbox  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

OLD = "535.129.03"
REASON = f"NVIDIA driver {OLD} is older than 580.65.06, which SGLang 0.5.23 (torch 2.14.1, CUDA 13.0) needs"


def test_an_old_driver_makes_start_fail_at_once_with_the_preflights_line(run_soong, sandbox):  # noqa: F811
    sandbox("--nvidia-driver", OLD)
    began = time.monotonic()
    result = run_soong(*SANDBOX, "start", "-y", "--model", "llama-3.1-8b", timeout=150)
    took = time.monotonic() - began
    assert result.returncode == 12, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("soong: error:")]
    assert len(errors) == 1, result.stderr
    assert REASON in errors[0] and "failed its preflight checks" in errors[0]
    assert "the instance terminates itself in 10 minutes; 'soong stop' ends it now" in errors[0]
    assert "Traceback" not in result.stderr and "not ready:" not in result.stderr
    assert took < 60, f"start took {took:.0f}s to report the failed preflight"
    # it is still there for a look (the grace), and 'soong stop' ends it now
    [row] = json.loads(run_soong(*SANDBOX, "status", "-f", "json").stdout)
    stopped = run_soong(*SANDBOX, "stop", "-y", timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(run_soong(*SANDBOX, "status", "-f", "json").stdout) == []
    assert row
