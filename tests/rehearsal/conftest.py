"""Fixtures of the boot rehearsal: one full boot shared by a module, and the skip rule.

The rehearsal runs only where it can boot a machine (root, systemd-nspawn,
debootstrap); anywhere else its boot tests skip with the reason. CI runs as root and
``.ci/run`` installs the Debian packages it needs.
"""

from __future__ import annotations

import time

import pytest

from soong.testing.rehearsal import BootOptions, Rehearsal, rehearsal_unavailable
from soong.testing.rehearsal_image import cache_root
from soong.testing.rehearsal_resolve import resolve_pins, target_image

#: The rehearsal's cache (image, verdicts, pip/npm caches), read before any test replaces HOME.
CACHE = cache_root()

#: Minutes each step of the full boot may take before the rehearsal fails (n8n's npm install
#: is the long one: about 3 GB of node_modules on a 2-core machine).
DAEMON_MINUTES = 5
SGLANG_MINUTES = 5
N8N_INSTALL_MINUTES = 20
N8N_READY_MINUTES = 10


def require_rehearsal() -> None:
    """Skip the calling test where no machine can boot."""
    reason = rehearsal_unavailable()
    if reason:
        pytest.skip(reason)


def resolve_or_fail(rh: Rehearsal) -> None:
    """Fail the rehearsal when SGLang's pins cannot install on the image the plan boots."""
    from soong.plugins.sglang.platform import SGLANG_PINS

    result = resolve_pins(SGLANG_PINS, target_image(rh.plan), cache_dir=rh.cache)
    rh.timings["sglang-resolve"] = round(result.seconds, 1)
    assert result.ok, result.summary()


@pytest.fixture(scope="module")
def full_boot(tmp_path_factory):
    """One machine booted with everything on (daemon, file system, SGLang stand-in, n8n), ready."""
    from soong.plugins.sglang.userdata import N8N_VERSION
    from soong.testing import rehearsal_n8n

    require_rehearsal()
    with Rehearsal(tmp_path_factory.mktemp("rehearsal-full"), BootOptions(), cache=CACHE) as rh:
        started = time.monotonic()
        resolve_or_fail(rh)
        rh.wait_phase("daemon-up", timeout=DAEMON_MINUTES * 60, fail_on=("daemon-failed", "preflight-failed"))
        delivered = rh.deliver_secrets()  # as 'soong start' does once the daemon answers: SGLang waits for it
        assert [(d.name, d.outcome) for d in delivered] == [("hf-token", "delivered")], [d.line() for d in delivered]
        rh.wait_phase("sglang-ready", timeout=SGLANG_MINUTES * 60, fail_on=("sglang-failed", "preflight-failed"))
        rehearsal_n8n.wait_installed(rh, N8N_VERSION, N8N_INSTALL_MINUTES * 60)
        rh.timings["sqlite3"] = rehearsal_n8n.finish_install(rh, rh.cache)
        rh.wait_phase("n8n-ready", timeout=N8N_READY_MINUTES * 60, fail_on=("n8n-failed",))
        rh.timings["boot"] = round(time.monotonic() - started, 1)
        yield rh
