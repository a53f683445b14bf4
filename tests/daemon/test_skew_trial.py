"""The real daemon with its clock an hour behind the config's launched_at (libfaketime) still enforces the lease.

Before, it refused to start ("launched_at is in the future") and nothing was enforced.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import requests

from soong.testing.emulator import run_emulator
from soong.testing.net import free_port, wait_for_port
from tests.daemon.conftest import API_KEY, TOKEN, launch_instance
from tests.daemon.processes import Role, terminate_calls, wait_until, write_config

pytestmark = pytest.mark.slow

HOUR = 3600

#: libfaketime 0.9.10 (Debian bookworm's) mishandles clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) when the
#: monotonic clock is not faked: it shifts the deadline anyway, and the call fails with EINVAL (fixed in 0.9.11 by
#: commit d17bb11, "Honor fake_monotonic_clock setting in clock_nanosleep", wolfcw/libfaketime#426). Python 3.11+
#: sleeps with exactly that call ("Changed in version 3.11: On Unix, the clock_nanosleep() ... functions are now
#: used", time.sleep's documentation), so under it every time.sleep raises OSError. With the monotonic clock faked
#: as well, 0.9.10 hangs threading waits instead. The trial's Python processes therefore sleep through select(),
#: which libfaketime passes through unchanged: a sitecustomize on PYTHONPATH, for this test's processes only.
SLEEP_THROUGH_SELECT = """import select
import time


def _sleep(seconds):
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    select.select([], [], [], seconds)


time.sleep = _sleep
"""


@pytest.fixture(scope="module")
def emulator():
    with run_emulator("--boot-delay", "0", "--rate-limit", "off", "--launch-rate-limit", "off",
                      "--terminate-delay", "0", api_key=API_KEY) as handle:
        yield handle


def test_a_daemon_an_hour_behind_still_ends_the_lease(tmp_path, emulator):
    faketime = shutil.which("faketime")
    if faketime is None:
        pytest.skip("the faketime command (Debian package faketime) is not installed")
    instance_id = launch_instance(emulator, "soong-skew")
    emulator.clear_requests()
    port = free_port()
    # launched_at is now on the real clock (the laptop's); the daemon's clock is an hour behind it, and the
    # emulator (the provider) keeps the real time. A lease of 0.004 h (14.4 s) at the real time scale.
    config = write_config(tmp_path, provider_api_url=emulator.url, instance_name="soong-skew",
                          bind=f"127.0.0.1:{port}", lease_hours=0.004, check_interval_seconds=0.5)
    # faketime 0.9.10: -f takes libfaketime's advanced format ("-1h": an offset from the real time, for every
    # process that inherits it); --exclude-monotonic sets FAKETIME_DONT_FAKE_MONOTONIC=1, leaving monotonic
    # clocks (timeouts, gunicorn's) real (the command's own --help).
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLEEP_THROUGH_SELECT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    daemon = Role(config, prefix=(faketime, "--exclude-monotonic", "-f", "-1h"), env=env)
    try:
        try:
            wait_for_port(port, timeout=20)
        except TimeoutError:
            raise AssertionError(daemon.log()) from None
        auth = {"Authorization": f"Bearer {TOKEN}"}

        def status():
            return requests.get(f"http://127.0.0.1:{port}/status", headers=auth, timeout=5).json()

        settled = wait_until(lambda: (status().get("clock") or {}).get("status") == "provider" and status(), 20,
                             "the launch time settled with the provider's clock", daemon.log)
        assert abs(settled["clock"]["provider_offset_seconds"] - HOUR) < 10
        assert abs(settled["clock"]["skew_seconds"] - HOUR) < 30  # launched_at seemed an hour in the future
        wait_until(lambda: terminate_calls(emulator), 40, "a terminate call at the lease end", daemon.log)
        final = wait_until(lambda: (status()["termination"] or {}).get("outcome") == "verified" and status(), 20,
                           "a verified termination", daemon.log)
        assert final["shutdown"]["reason"] == "lease_expired" and final["instance_id"] == instance_id
        state = json.loads((tmp_path / "state" / "state.json").read_text())
        lease = state["lease_end"] - state["launched_at"]
        assert abs(lease - 0.004 * HOUR) < 1e-6  # the lease, unchanged, counted on the daemon's own clock
        assert state["hard_limit_at"] <= state["clock"]["first_start"] + 8 * HOUR
    finally:
        daemon.stop()
