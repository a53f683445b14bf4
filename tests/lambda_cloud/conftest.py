"""Fixtures for the Lambda provider and emulator tests: emulators on real loopback sockets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from soong.core.context import Context
from soong.plugins.lambda_cloud.emulator import EmulatorClock, RateLimit
from soong.plugins.lambda_cloud.provider import LambdaProvider
from soong.testing.emulator import run_emulator, serve_in_thread
from tests.conftest import SHARED

#: Fast client settings for tests: small spacing, tiny back-off, no lookup window.
FAST = {
    "SOONG_LAMBDA_REQUEST_INTERVAL_SECONDS": "0",
    "SOONG_LAMBDA_LAUNCH_INTERVAL_SECONDS": "0",
    "SOONG_LAMBDA_RETRY_BASE_SECONDS": "0.01",
    "SOONG_LAMBDA_RETRY_BUDGET_SECONDS": "10",
    "SOONG_LAMBDA_LAUNCH_LOOKUP_SECONDS": "0",
}


def api_dir() -> Path:
    """Where Lambda's OpenAPI description and samples are (``$SOONG_SHARED_DIR`` overrides)."""
    base = Path(os.environ.get("SOONG_SHARED_DIR") or SHARED)
    return base / "lambda-cloud-api"


@pytest.fixture(scope="session")
def spec() -> dict:
    """Lambda's OpenAPI 3.1 description (skips when the shared folder is absent)."""
    path = api_dir() / "openapi-1.8.3.json"
    if not path.exists():
        pytest.skip(f"Lambda's OpenAPI description is not at {path} (set SOONG_SHARED_DIR)")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def emu():
    """A fresh in-process emulator (single-threaded WSGI server on a loopback port), frozen clock, no limits."""
    clock = EmulatorClock()
    clock.freeze()
    from soong.plugins.lambda_cloud.emulator import create_app

    app = create_app(api_key="test-key-emulator", clock=clock, boot_delay=5.0, general_limit=RateLimit(0, 0),
                     launch_limit=RateLimit(0, 0), random_seed=7, record_bodies=True)
    with serve_in_thread(app) as handle:
        yield handle


@pytest.fixture(scope="module")
def gunicorn_emu():
    """One emulator under gunicorn for a module (reset between tests by ``emu_g``)."""
    with run_emulator("--rate-limit", "off", "--launch-rate-limit", "off", "--boot-delay", "5", "--frozen-clock",
                      "--record-bodies", "--random-seed", "3") as handle:
        yield handle


@pytest.fixture
def emu_g(gunicorn_emu):
    """The module's gunicorn emulator, reset to its seed."""
    gunicorn_emu.reset()
    gunicorn_emu.configure(general_limit="off", launch_limit="off", boot_delay=5, account_status="active", quota=None)
    return gunicorn_emu


def make_context(handle, **env_overrides: str) -> Context:
    """A Context pointing at an emulator, with fast client settings."""
    env = dict(os.environ)
    env.update(FAST)
    env["SOONG_LAMBDA_API_URL"] = handle.url
    env["LAMBDA_API_KEY"] = handle.api_key
    env.update(env_overrides)
    return Context(env=env)


@pytest.fixture
def provider(emu):
    """A LambdaProvider talking to the in-process emulator, with an SSH key 'me' on the account."""
    emu.add_ssh_key("me")
    return LambdaProvider(make_context(emu))
