"""Probes are not use: health and metrics checks and idle open connections never hold off the idle shutdown.

The trial runs in a network namespace of its own (``unshare --net``, as root) so that the
services' real ports, 8000 and 5678, are free and only the trial's sockets are there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from soong.core.bootstrap import LaunchPlan, LaunchSecrets
from soong.plugins.sglang.catalog import BUILTIN_MODELS
from soong.plugins.sglang.userdata import daemon_config

ROOT = Path(__file__).resolve().parents[2]


def _rendered_config() -> dict:
    """The daemon config soong's bootstrap writes, SGLang on (its metrics on 127.0.0.1:8000), n8n off."""
    plan = LaunchPlan(model=BUILTIN_MODELS[0], instance_name="soong-probe-trial", gpu_count=1,
                      secrets=LaunchSecrets("k" * 16, "t" * 16), launched_at=dt.datetime.now(dt.timezone.utc),
                      services={"sglang": True, "n8n": False}, provider_api_url="https://cloud.lambda.ai/api/v1")
    return json.loads(json.dumps(daemon_config(plan), default=str))


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None,
                    reason="needs a network namespace of its own (root, unshare, ip)")
def test_health_and_metrics_probes_and_idle_connections_are_not_activity():
    command = f"ip link set lo up && exec {sys.executable} -m tests.daemon.probe_trial \"$CONFIG\""
    done = subprocess.run(["unshare", "--net", "sh", "-c", command], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, CONFIG=json.dumps(_rendered_config())))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    steps = result["steps"]
    assert steps["baseline"]["sglang"] == "idle"
    # /health, /metrics and /v1/models three times each, and a connection held open to n8n's port: nothing.
    assert steps["probes"]["sglang"] == "idle", steps
    assert steps["probes"]["forwarded_connections"] == 0, steps
    # A real request is.
    assert steps["request"]["sglang"] == "active", steps
    assert steps["after"]["sglang"] == "idle", steps
