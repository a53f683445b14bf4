"""Fixtures for the lifecycle tests: the Lambda emulator under gunicorn and an environment pointing soong at it.

The emulator hands out instance addresses from a random loopback block, so a
daemon or model stand-in bound to an instance's address never collides with
another test run on the same machine. The Lambda API key is a test secret: the
session fixture of tests/conftest.py fails the run if any command printed it.
"""

from __future__ import annotations

import os
import random

import pytest

from soong.testing.emulator import run_emulator
from soong.testing.net import free_port
from tests.conftest import TEST_SECRETS

FAST = {
    "SOONG_LAMBDA_REQUEST_INTERVAL_SECONDS": "0",
    "SOONG_LAMBDA_LAUNCH_INTERVAL_SECONDS": "0",
    "SOONG_LAMBDA_RETRY_BASE_SECONDS": "0.01",
    "SOONG_LAMBDA_RETRY_BUDGET_SECONDS": "0.5",
    "SOONG_LAMBDA_LAUNCH_LOOKUP_SECONDS": "2",
    "SOONG_START_POLL_SECONDS": "0.1",
    "SOONG_START_CAPACITY_POLL_SECONDS": "0.2",
    "SOONG_STOP_POLL_SECONDS": "0.05",
    "SOONG_STOP_WAIT_SECONDS": "10",
    "SOONG_STOP_ATTEMPTS": "2",
    "SOONG_STATUS_DAEMON_TIMEOUT_SECONDS": "2",
}


def random_ip_base() -> str:
    """A /24 of loopback addresses unlikely to be used by another run."""
    return f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.1"


@pytest.fixture(scope="module")
def emulator():
    """One emulator for the module, no rate limits, instances active at once."""
    with run_emulator("--rate-limit", "off", "--launch-rate-limit", "off", "--boot-delay", "0",
                      "--terminate-delay", "0", "--gone-delay", "0", "--ip-base", random_ip_base(),
                      api_key=TEST_SECRETS["lambda_api_key"]) as handle:
        yield handle


@pytest.fixture(scope="module")
def daemon_port():
    """The status daemon port every instance of the module uses (each on its own address)."""
    return free_port()


@pytest.fixture
def emu(emulator):
    """The emulator back at its seed, with one SSH key ``me``."""
    emulator.reset()
    emulator.freeze(False)
    emulator.configure(boot_delay=0, terminate_delay=0, gone_delay=0)
    emulator.add_ssh_key("me")
    return emulator


@pytest.fixture
def soong_env(emu, daemon_port, monkeypatch):
    """Environment for ``run_soong`` (and this process) pointing at the emulator, direct tunnels, fast polls."""
    env = {
        **FAST,
        "SOONG_LAMBDA_API_URL": emu.url,
        "LAMBDA_API_KEY": emu.api_key,
        "SOONG_DAEMON_TOKEN": TEST_SECRETS["daemon_token"],
        "SOONG_TUNNEL_BACKEND": "direct",
        "SOONG_SERVICES_N8N": "false",
        "SOONG_STATUS_DAEMON_PORT": str(daemon_port),
        # a model whose default 32k context fits the A10 (llama-3.1-8b's SGLang pool there holds ~30k tokens)
        "SOONG_DEFAULTS_MODEL": "mistral-7b",
        "NO_COLOR": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def live_instances(emu) -> list[dict]:
    """Instances the emulator would still bill for."""
    return [i for i in emu.instances() if i["status"] in ("booting", "active", "unhealthy", "terminating")]


def ledger():
    """The ledger of this test's default profile."""
    from soong.core.context import Context
    from soong.core.ledger import Ledger

    return Ledger.for_context(Context(env=dict(os.environ)))
