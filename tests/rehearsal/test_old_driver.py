"""A short rehearsal boot on a GPU whose driver is too old for the pinned torch's CUDA runtime.

The preflight must stop the bootstrap (phase ``preflight-failed`` with the reason),
start nothing of the file system, SGLang or n8n, and the CLI's readiness loop must
report the reason as one line within a minute of the daemon coming up.
"""

from __future__ import annotations

import time

import pytest

from soong.testing.rehearsal import BootOptions, Rehearsal
from tests.rehearsal.conftest import CACHE, DAEMON_MINUTES, require_rehearsal

pytestmark = pytest.mark.rehearsal

OLD_DRIVER = "535.129.03"  # the R535 long-term branch: CUDA 12.2 at most


@pytest.fixture(scope="module")
def old_driver_boot(tmp_path_factory):
    """A machine whose nvidia-smi reports driver 535.129.03 (n8n off: nothing of it may start anyway)."""
    require_rehearsal()
    options = BootOptions(driver_version=OLD_DRIVER, n8n=False)
    with Rehearsal(tmp_path_factory.mktemp("rehearsal-old-driver"), options, cache=CACHE) as rh:
        rh.wait_phase("daemon-up", timeout=DAEMON_MINUTES * 60, fail_on=("daemon-failed",))
        yield rh


def test_preflight_failure_reaches_readiness_within_a_minute(old_driver_boot):
    from soong.core.readiness import InstanceFailed, TunnelProbe, wait_until_ready
    from soong.plugins.sglang.platform import MIN_NVIDIA_DRIVER, version_text

    rh = old_driver_boot
    daemon_up = rh.phases["daemon-up"].seen_after
    probe = TunnelProbe(rh.context)
    try:
        with pytest.raises(InstanceFailed) as failure:
            wait_until_ready(rh.context.provider("lambda"), rh.instance.id, probe, timeout=60, poll=2,
                             on_progress=lambda progress: None)
    finally:
        probe.close()
    seen = time.time() - rh.machine.started_at
    message = str(failure.value)
    assert "\n" not in message
    assert OLD_DRIVER in message and version_text(MIN_NVIDIA_DRIVER) in message, message
    assert seen - daemon_up <= 60, f"the failure reached the CLI {seen - daemon_up:.0f}s after daemon-up"


def test_preflight_failure_is_logged_and_stops_the_bootstrap(old_driver_boot):
    rh = old_driver_boot
    failed = rh.wait_phase("preflight-failed", timeout=60, fail_on=("preflight-ok",))
    assert OLD_DRIVER in failed.message, failed.message
    time.sleep(5)  # give anything that would (wrongly) start after it a moment
    names = [phase for _, phase, _ in rh.boot_log()]
    assert not [n for n in names if n.startswith(("fs-", "sglang-", "n8n-"))], names
    for unit in ("soong-fs", "soong-sglang-install", "soong-sglang"):
        entered = rh.machine.run(["systemctl", "show", "-p", "ActiveEnterTimestampMonotonic", "--value", f"{unit}.service"],
                                 timeout=30).stdout.strip()
        assert entered in ("", "0"), f"{unit} started after the preflight failed"


def test_disabled_n8n_is_not_watched(old_driver_boot):
    """With n8n off the daemon has no n8n source: one that reads unknown would hold the idle timer forever."""
    status = old_driver_boot.daemon_status()
    assert "n8n" not in status["sources"], status["sources"]
