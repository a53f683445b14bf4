"""What the daemon says about the secrets delivered after boot, and a daemon that starts without its API key."""

from __future__ import annotations

import os
import subprocess

import pytest
import requests
from falcon import testing

from soong_daemon.cli import check_startup
from soong_daemon.config import ConfigError
from tests.daemon.conftest import API_KEY, TOKEN, instance_status, launch_instance, write_secret
from tests.daemon.test_integration import VENV_BIN, Daemon, daemons, emulator  # noqa: F401 - fixtures

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _secrets(make_app, **overrides) -> dict:
    return testing.TestClient(make_app(**overrides)).simulate_get("/status", headers=AUTH).json["secrets"]


def test_status_reports_the_api_key_and_the_hf_token(make_app, tmp_path, secrets_dir):
    assert _secrets(make_app) == {"lambda_api_key": {"delivery": "user-data", "present": True},
                                  "hf_token": {"expected": False, "delivered": False}, "can_self_terminate": True}
    boot = tmp_path / "boot.log"
    boot.write_text("2025-03-01T12:01:00Z phase=daemon-up up\n")
    (secrets_dir / "api-key").unlink()
    waiting = _secrets(make_app, api_key_delivery="ssh", hf_token_expected=True)
    assert waiting == {"lambda_api_key": {"delivery": "ssh", "present": False},
                       "hf_token": {"expected": True, "delivered": False}, "can_self_terminate": False}
    with boot.open("a") as log:
        log.write("2025-03-01T12:02:00Z phase=hf-token-delivered the Hugging Face token received over SSH\n")
    write_secret(secrets_dir / "api-key", API_KEY, mode=0o644)  # readable by others: the daemon cannot use it
    assert _secrets(make_app, api_key_delivery="ssh", hf_token_expected=True)["lambda_api_key"]["present"] is False
    os.chmod(secrets_dir / "api-key", 0o600)
    delivered = _secrets(make_app, api_key_delivery="ssh", hf_token_expected=True)
    assert delivered["hf_token"] == {"expected": True, "delivered": True} and delivered["can_self_terminate"] is True


def test_start_up_needs_the_api_key_unless_it_comes_over_ssh(config_file, secrets_dir):
    (secrets_dir / "api-key").unlink()
    with pytest.raises(ConfigError, match="config key 'api_key_file': cannot open"):
        check_startup(str(config_file()))
    assert check_startup(str(config_file(api_key_delivery="ssh"))).api_key_delivery == "ssh"
    write_secret(secrets_dir / "api-key", API_KEY, mode=0o640)  # delivered but broken: still refused
    with pytest.raises(ConfigError, match="readable by others"):
        check_startup(str(config_file(api_key_delivery="ssh")))
    with pytest.raises(ConfigError, match="api_key_delivery"):
        check_startup(str(config_file(api_key_delivery="mail")))


@pytest.mark.slow
def test_a_daemon_without_its_key_says_so_and_ends_the_instance_once_it_arrives(tmp_path, emulator, daemons):  # noqa: F811
    instance_id = launch_instance(emulator, "soong-int-ssh-key")
    daemon = Daemon(tmp_path, provider_api_url=emulator.url, instance_id="", instance_name="soong-int-ssh-key",
                    lease_hours=1, time_scale=1800, idle_timeout_minutes=10080, api_key_delivery="ssh")
    key_file = tmp_path / "secrets" / "api-key"
    key_file.unlink()
    daemons.append(daemon)
    daemon.start()
    status = daemon.wait_for(lambda s: s["shutdown"] is not None and s["enforcer"]["running"])
    assert status["secrets"]["can_self_terminate"] is False
    assert status["secrets"]["lambda_api_key"] == {"delivery": "ssh", "present": False}
    assert status["shutdown"]["reason"] == "lease_expired" and status["instance_id"] is None
    assert instance_status(emulator, instance_id) == "active"  # decided, but it cannot terminate without the key
    write_secret(key_file, API_KEY)  # what soong's receiver does over SSH; no restart
    status = daemon.wait_for(lambda s: (s["termination"] or {}).get("outcome") == "verified")
    assert status["secrets"]["can_self_terminate"] is True and status["instance_id"] == instance_id
    assert instance_status(emulator, instance_id) in {"terminating", "terminated", "gone"}
    assert requests.get(daemon.url + "/health", timeout=5).status_code == 200
    result = subprocess.run([str(VENV_BIN / "soong-daemon"), "--config", str(daemon.config_path), "--check"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
