"""The real daemon under gunicorn reads a failed preflight from the boot log and ends its instance through the emulator."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from soong.testing.emulator import run_emulator
from tests.daemon.conftest import API_KEY, instance_status, launch_instance
from tests.daemon.test_integration import Daemon, daemons  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

REASON = "NVIDIA driver 535.129.03 is older than 580.65.06, which SGLang 0.5.23 (torch 2.14.1, CUDA 13.0) needs"


@pytest.fixture(scope="module")
def emulator():
    with run_emulator("--boot-delay", "0", "--rate-limit", "off", "--launch-rate-limit", "off",
                      api_key=API_KEY) as handle:
        yield handle


def test_a_failed_preflight_is_reported_then_terminated_after_the_grace(tmp_path, emulator, daemons):  # noqa: F811
    instance_id = launch_instance(emulator, "soong-int-preflight")
    # a 10-minute grace on a clock 300 times faster: 2 s for real
    daemon = Daemon(tmp_path, provider_api_url=emulator.url, instance_id="", instance_name="soong-int-preflight",
                    time_scale=300, preflight_grace_minutes=10, idle_timeout_minutes=10080, warn_minutes=0)
    daemons.append(daemon)
    daemon.start()
    assert daemon.get("/status")["preflight"]["status"] == "pending"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(tmp_path / "boot.log", "a") as log:
        log.write(f"{stamp} phase=daemon-up status daemon answers\n{stamp} phase=preflight-failed {REASON}\n")
    seen_at = time.monotonic()
    failed = daemon.wait_for(lambda s: s["preflight"]["status"] == "failed", timeout=5)
    assert failed["preflight"]["reason"] == REASON and failed["preflight"]["grace_minutes"] == 10
    assert instance_status(emulator, instance_id) == "active"
    done = daemon.wait_for(lambda s: (s["termination"] or {}).get("outcome") == "verified", timeout=30)
    assert time.monotonic() - seen_at >= 0.5  # not at once: after the (scaled) grace
    assert done["shutdown"]["reason"] == "preflight_failed" and REASON in done["shutdown"]["detail"]
    assert done["instance_id"] == instance_id
    assert instance_status(emulator, instance_id) in {"terminating", "terminated", "gone"}
    terminate_calls = [e for e in emulator.requests() if e["path"] == "/instance-operations/terminate"]
    assert len(terminate_calls) == 1
