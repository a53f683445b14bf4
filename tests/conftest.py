"""Shared fixtures: every test runs with its own HOME, XDG folders and keyring file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent
def _find_shared() -> Path:
    """Lambda's API description and sample responses.

    ``$SOONG_SHARED_DIR`` if set, else a ``shared/`` folder beside the project root
    (searched upwards, so worktrees find it too), else the copy in ``tests/data/``
    (the same files, so a clone on its own still runs every test).
    """
    if os.environ.get("SOONG_SHARED_DIR"):
        return Path(os.environ["SOONG_SHARED_DIR"])
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared"
        if (candidate / "lambda-cloud-api").is_dir():
            return candidate
    return Path(__file__).resolve().parent / "data"


SHARED = _find_shared()
#: Secret values used by tests; a test greps all command output for them.
TEST_SECRETS = {"lambda_api_key": "secret_test-api-key-7c1e2f", "daemon_token": "tok_test-daemon-token-93ab51"}


@pytest.fixture(scope="session")
def hub_standin():
    """A Hugging Face Hub stand-in on loopback for the whole run: every model public (soong.testing.hub)."""
    from soong.testing.hub import HubStandIn

    with HubStandIn() as hub:
        yield hub


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch, hub_standin):
    """A private HOME, XDG dirs and a real file keyring backend for each test."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PYTHON_KEYRING_BACKEND": "soong.testing.keyring_backend.FileKeyring",
        "SOONG_TEST_KEYRING_FILE": str(tmp_path / "keyring.json"),
        "HF_ENDPOINT": hub_standin.url,  # the gated-model check before a launch never leaves loopback
    }
    for name in ("SOONG_CONFIG_DIR", "SOONG_PROFILE", "LAMBDA_API_KEY", "SOONG_DAEMON_TOKEN",
                 "SOONG_DISABLE_PLUGINS", "SOONG_LOAD_PLUGINS", "SOONG_LAMBDA_API_URL", "HF_TOKEN",
                 "SOONG_HUGGINGFACE_ENDPOINT", "SOONG_HUGGINGFACE_CHECK_GATED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    import keyring.core

    keyring.core._keyring_backend = None  # re-read PYTHON_KEYRING_BACKEND for this test
    yield home
    keyring.core._keyring_backend = None


#: Output of every soong command the tests ran (checked for leaked secrets at the end).
COMMAND_OUTPUT: list[tuple[str, str]] = []


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_command_output():
    """After the whole run: no test secret appeared in any command's stdout or stderr."""
    yield
    leaks = [(cmd, name) for cmd, text in COMMAND_OUTPUT for name, value in TEST_SECRETS.items() if value in text]
    assert not leaks, f"secrets leaked in command output: {leaks}"


@pytest.fixture
def run_soong():
    """Run the installed ``soong`` executable as a subprocess; return CompletedProcess.

    Pass ``reveals_secret=True`` for the few calls that print a secret on purpose
    (``secrets show --reveal``); all other output is checked for test secrets.
    """

    def run(*args: str, input: str | None = None, env: dict | None = None, timeout: float = 60,
            reveals_secret: bool = False) -> subprocess.CompletedProcess:
        full_env = dict(os.environ)
        full_env.update(env or {})
        result = subprocess.run([str(VENV_BIN / "soong"), *args], input=input, capture_output=True, text=True,
                                env=full_env, timeout=timeout)
        if not reveals_secret:
            COMMAND_OUTPUT.append((" ".join(args), result.stdout + result.stderr))
        return result

    return run
