"""Fixtures for the status daemon: a manual clock, config files, secret files and an app."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from soong_daemon.activity import IDLE, Observation
from soong_daemon.config import DaemonConfig, parse_config
from soong_daemon.terminator import TerminationResult
from tests.conftest import TEST_SECRETS

TOKEN = TEST_SECRETS["daemon_token"]
API_KEY = TEST_SECRETS["lambda_api_key"]
LAUNCH = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def real_seconds(self, seconds: float) -> float:
        return seconds

    def advance(self, seconds: float) -> None:
        self.t += seconds


class RecordingTerminator:
    """Stands in for the API terminator where a test is about the rules, not the API: records each call."""

    def __init__(self) -> None:
        self.calls: list[str | None] = []

    def terminate(self, resolve_id: Callable[[], str | None], progress: Callable[[TerminationResult], None]):
        self.calls.append(resolve_id())
        result = TerminationResult("verified", 1, instance_status="terminating")
        progress(result)
        return result


class SettableSource:
    """An activity source whose answer the test sets."""

    def __init__(self, name: str = "probe", status: str = IDLE) -> None:
        self.name = name
        self.status = status
        self.polls = 0

    def poll(self) -> Observation:
        self.polls += 1
        return Observation(self.name, self.status, f"set to {self.status}")


class QuietNotifier:
    """Collects warnings instead of calling wall or a webhook."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict]] = []

    def warn(self, message: str, payload: dict) -> None:
        self.messages.append((message, dict(payload)))


def write_secret(path: Path, value: str, mode: int = 0o600) -> Path:
    """Write a secret file with ``mode`` from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    os.chmod(path, mode)
    return path


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    """A folder holding the token and API key files (0600)."""
    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o700)
    write_secret(folder / "token", TOKEN)
    write_secret(folder / "api-key", API_KEY)
    return folder


@pytest.fixture
def config_data(tmp_path: Path, secrets_dir: Path) -> dict[str, Any]:
    """A valid configuration mapping pointing at private temporary paths."""
    return {
        "instance_id": "0920582c7ff041399e34823a0be62549",
        "instance_name": "soong-test-1",
        "provider_api_url": "http://127.0.0.1:9/api/v1",
        "launched_at": LAUNCH.isoformat().replace("+00:00", "Z"),
        "lease_hours": 4,
        "idle_timeout_minutes": 30,
        "hard_limit_hours": 8,
        "warn_minutes": 10,
        "check_interval_seconds": 1,
        "state_dir": str(tmp_path / "state"),
        "token_file": str(secrets_dir / "token"),
        "api_key_file": str(secrets_dir / "api-key"),
        "sglang_metrics_url": "",
        "n8n_metrics_url": "",
        "webhook_url": "",
        "model": "llama-3.1-8b",
        "boot_log": str(tmp_path / "boot.log"),
        "wall": False,
        "poweroff_command": [],
    }


@pytest.fixture
def make_config(config_data: dict[str, Any]) -> Callable[..., DaemonConfig]:
    """Build a DaemonConfig from the base mapping with overrides."""

    def make(**overrides: Any) -> DaemonConfig:
        return parse_config({**config_data, **overrides})

    return make


@pytest.fixture
def config_file(tmp_path: Path, config_data: dict[str, Any]) -> Callable[..., Path]:
    """Write the base mapping (with overrides) as YAML; return its path."""

    def write(**overrides: Any) -> Path:
        path = tmp_path / "daemon.yaml"
        path.write_text(yaml.safe_dump({**config_data, **overrides}))
        return path

    return write


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock starting ten minutes after the launch."""
    return ManualClock(LAUNCH.timestamp() + 600)


@pytest.fixture
def make_app(make_config, clock):
    """Build the daemon app with a manual clock, a recording terminator and settable sources."""
    from soong_daemon.app import create_app

    def make(*, sources=None, **overrides: Any):
        config = make_config(**overrides)
        return create_app(config, clock=clock, terminator=RecordingTerminator(),
                          activity_sources=sources if sources is not None else [SettableSource()],
                          notifier=QuietNotifier(), gpu_probe=lambda: None)

    return make


def launch_instance(emulator, name: str = "soong-test-1") -> str:
    """Launch one instance through the emulator's real API; return its id."""
    if not any(key["name"] == "daemon-test" for key in emulator.api("GET", "/ssh-keys").json()["data"]):
        emulator.add_ssh_key("daemon-test")
    types = emulator.api("GET", "/instance-types").json()["data"]
    type_name, info = next((k, v) for k, v in sorted(types.items()) if v["regions_with_capacity_available"])
    response = emulator.api("POST", "/instance-operations/launch", {
        "region_name": info["regions_with_capacity_available"][0]["name"], "instance_type_name": type_name,
        "ssh_key_names": ["daemon-test"], "name": name})
    assert response.status_code == 200, response.text
    return response.json()["data"]["instance_ids"][0]


def instance_status(emulator, instance_id: str) -> str:
    """The emulator's own view of an instance (gone ones included)."""
    return next(i for i in emulator.instances() if i["id"] == instance_id)["status"]


@pytest.fixture
def emulator():
    """The Lambda API emulator served from a thread, without rate limits or boot delay."""
    from soong.plugins.lambda_cloud.emulator.config import RateLimit
    from soong.testing.emulator import serve_in_thread

    with serve_in_thread(general_limit=RateLimit.parse("off"), launch_limit=RateLimit.parse("off"),
                         boot_delay=0, api_key=API_KEY) as handle:
        yield handle
