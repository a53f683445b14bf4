"""Secrets: the real file keyring backend, env overrides, headless detection, masking, no leaks."""

from __future__ import annotations

import os
import stat

import pytest

from soong.core.errors import SecretError
from soong.core.secrets import SecretStore
from tests.conftest import TEST_SECRETS

KEY = TEST_SECRETS["lambda_api_key"]
#: What the Lambda plugin declares (soong_secrets); a bare store knows only core's secrets.
LAMBDA = {"lambda_api_key": "LAMBDA_API_KEY"}


def test_set_get_delete_through_keyring():
    store = SecretStore(env={})
    assert store.keyring_available()
    assert store.get("lambda_api_key") is None
    store.set("lambda_api_key", KEY)
    assert store.get("lambda_api_key") == KEY and store.source("lambda_api_key") == "keyring"
    assert store.delete("lambda_api_key") is True
    assert store.delete("lambda_api_key") is False


def test_service_namespaces_are_separate():
    SecretStore(service="soong", env={}).set("daemon_token", "aaaa-real")
    assert SecretStore(service="soong-sandbox", env={}).get("daemon_token") is None


def test_environment_overrides_keyring():
    store = SecretStore(env={"LAMBDA_API_KEY": "from-env-1234"}, declared=LAMBDA)
    store.set("lambda_api_key", KEY)
    assert store.get("lambda_api_key") == "from-env-1234" and store.source("lambda_api_key") == "env"
    undeclared = SecretStore(env={"LAMBDA_API_KEY": "from-env-1234"})  # without the plugin: its own variable only
    assert undeclared.get("lambda_api_key") == KEY and undeclared.env_var("lambda_api_key") == "SOONG_SECRET_LAMBDA_API_KEY"


def test_missing_secret_says_how_to_set_it():
    with pytest.raises(SecretError) as info:
        SecretStore(env={}, declared=LAMBDA).require("lambda_api_key")
    assert "soong secrets set lambda_api_key" in str(info.value) and "$LAMBDA_API_KEY" in str(info.value)


def test_headless_fail_backend_is_detected(monkeypatch):
    import keyring.core

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    keyring.core._keyring_backend = None
    store = SecretStore(env={})
    assert not store.keyring_available()
    with pytest.raises(SecretError) as info:
        store.set("lambda_api_key", KEY)
    assert "no usable keyring backend" in str(info.value) and "secrets.backend file" in str(info.value)
    with pytest.raises(SecretError, match="no usable keyring backend"):
        store.require("lambda_api_key")


def test_file_backend_is_private_and_warns(tmp_path, capsys):
    path = tmp_path / "cfg" / "secrets.yaml"
    store = SecretStore(backend="file", file_path=path, env={})
    store.set("daemon_token", "tok-1234567890")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert SecretStore(backend="file", file_path=path, env={}).get("daemon_token") == "tok-1234567890"
    assert "plaintext" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["Bad", "with space", "", "x" * 80])
def test_invalid_names_are_refused(name):
    with pytest.raises(SecretError):
        SecretStore(env={}).get(name)


def test_secrets_commands_never_print_the_secret(run_soong):
    set_result = run_soong("secrets", "set", "lambda_api_key", "--stdin", input=KEY + "\n")
    assert set_result.returncode == 0, set_result.stderr
    shown = run_soong("secrets", "show", "lambda_api_key", "-f", "json")
    assert shown.returncode == 0 and KEY[-4:] in shown.stdout
    listed = run_soong("secrets", "list")
    revealed = run_soong("secrets", "show", "lambda_api_key", "--reveal", "-f", "value", "-c", "value", reveals_secret=True)
    assert revealed.stdout.strip() == KEY
    for result in (set_result, shown, listed):
        assert KEY not in result.stdout + result.stderr
    missing = run_soong("secrets", "show", "daemon_token")
    assert missing.returncode == 8 and "not set" in missing.stderr
    deleted = run_soong("secrets", "delete", "lambda_api_key")
    assert deleted.returncode == 0
    assert run_soong("secrets", "show", "lambda_api_key").returncode == 8


def test_secret_in_an_error_is_masked_even_with_debug(run_soong):
    # A secret that ends up in an exception message (here: as a bad config value) is masked.
    env = {"LAMBDA_API_KEY": KEY, "SOONG_LAMBDA_API_URL": "not-a-url-" + KEY}
    result = run_soong("--debug", "config", "show", env=env)
    assert result.returncode == 3
    assert "not an http(s) URL" in result.stderr and "not-a-url-********" in result.stderr
    assert KEY not in result.stdout + result.stderr


def test_headless_cli_gives_one_line(run_soong):
    result = run_soong("secrets", "set", "lambda_api_key", "--stdin", input="value-123456\n",
                       env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert result.returncode == 4
    assert result.stderr.strip().count("\n") == 0 and "no usable keyring backend" in result.stderr
