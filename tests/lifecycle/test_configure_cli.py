"""``soong configure`` against the emulator: flags for scripts, the wizard, and nothing changed until the end."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from soong.testing.net import default_sigint
from tests.conftest import COMMAND_OUTPUT, VENV_BIN


@pytest.fixture
def env(soong_env, monkeypatch, isolated_env):
    """The emulator environment without the API key and daemon token variables (they would win over the keyring)."""
    monkeypatch.delenv("LAMBDA_API_KEY")
    monkeypatch.delenv("SOONG_DAEMON_TOKEN")
    return isolated_env


def config_file(home: Path) -> Path:
    return home / ".config/soong/config.yaml"


def stored(run_soong, name: str) -> str | None:
    result = run_soong("secrets", "show", name, "--reveal", "-f", "value", "-c", "value", reveals_secret=True)
    return result.stdout.strip() if result.returncode == 0 else None


def ssh_key(home: Path) -> Path:
    path = home / ".ssh" / "id_ed25519"
    path.parent.mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@test", "-f", str(path)], check=True)
    return path


def test_a_wrong_api_key_is_refused_and_nothing_is_stored(run_soong, env, emu):
    result = run_soong("configure", "--api-key-stdin", "--model", "qwen2.5-7b", input="not-the-key\n")
    assert result.returncode == 5, result.stderr
    assert "invalid-api-key" in result.stderr
    assert not config_file(env).exists()
    assert stored(run_soong, "lambda_api_key") is None and stored(run_soong, "daemon_token") is None


def test_flags_store_the_key_generate_a_token_never_printed_and_rerun_keeps_the_rest(run_soong, env, emu):
    key = ssh_key(env)
    first = run_soong("configure", "--api-key-stdin", "--model", "qwen2.5-7b", "--gpu", "gpu_1x_a10",
                      "--region", "us-east-1", "--lease-hours", "6", "--ssh-key", str(key), "--upload-ssh-key",
                      input=emu.api_key + "\n")
    assert first.returncode == 0, first.stderr
    token = stored(run_soong, "daemon_token")
    assert stored(run_soong, "lambda_api_key") == emu.api_key
    assert len(token) >= 43 and token not in first.stdout + first.stderr
    assert emu.api_key not in first.stdout + first.stderr
    uploaded = [k for k in emu.api("GET", "/ssh-keys").json()["data"] if k["public_key"].endswith("me@test")]
    assert len(uploaded) == 1
    values = yaml.safe_load(config_file(env).read_text())
    assert values["defaults"] == {"model": "qwen2.5-7b", "gpu": "gpu_1x_a10", "lease_hours": 6.0}
    assert values["lambda"] == {"default_region": "us-east-1", "ssh_key_name": uploaded[0]["name"]}

    again = run_soong("configure", "--lease-hours", "2")
    assert again.returncode == 0, again.stderr
    values = yaml.safe_load(config_file(env).read_text())
    assert values["defaults"] == {"model": "qwen2.5-7b", "gpu": "gpu_1x_a10", "lease_hours": 2.0}
    assert values["lambda"]["ssh_key_name"] == uploaded[0]["name"]
    assert stored(run_soong, "daemon_token") == token

    shown = run_soong("configure", "--show-token", reveals_secret=True)
    assert shown.stdout.strip() == token
    rotated = run_soong("configure", "--rotate-token")
    assert rotated.returncode == 0 and stored(run_soong, "daemon_token") not in (None, token)


def test_a_key_missing_from_the_account_is_not_uploaded_without_asking(run_soong, env, emu):
    key = ssh_key(env)
    result = run_soong("configure", "--api-key-stdin", "--ssh-key", str(key), input=emu.api_key + "\n")
    assert result.returncode == 8, result.stderr
    assert "--upload-ssh-key" in result.stderr
    assert not config_file(env).exists() and stored(run_soong, "lambda_api_key") is None


def test_a_file_system_is_created_in_the_chosen_region(run_soong, env, emu):
    result = run_soong("configure", "--api-key-stdin", "--region", "us-west-1", "--filesystem", "models",
                       "--create-filesystem", input=emu.api_key + "\n")
    assert result.returncode == 0, result.stderr
    [fs] = emu.api("GET", "/file-systems").json()["data"]
    assert fs["name"] == "models" and fs["region"]["name"] == "us-west-1"
    assert yaml.safe_load(config_file(env).read_text())["lambda"]["filesystem_name"] == "models"


def test_the_wizard_asks_everything_with_the_recommended_gpu_marked(run_soong, env, emu):
    key = ssh_key(env)
    emu.api("POST", "/ssh-keys", {"name": "laptop", "public_key": key.with_suffix(".pub").read_text().strip()})
    answers = "\n".join([
        emu.api_key,      # API key
        "qwen2.5-7b",     # model, by its id
        "2",              # the first type that fits (the recommended one)
        "",               # region: keep the default (any)
        "1",              # file system: none
        "1",              # lease: 2 h
        str(key),         # SSH key path
        "y",              # save
    ]) + "\n"
    result = run_soong("configure", "--interactive", input=answers)
    assert result.returncode == 0, result.stderr
    assert "<- recommended" in result.stderr and "the key works" in result.stderr
    assert "is the account's key 'laptop'" in result.stderr
    values = yaml.safe_load(config_file(env).read_text())
    assert values["defaults"]["model"] == "qwen2.5-7b" and values["defaults"]["lease_hours"] == 2.0
    assert values["defaults"]["gpu"] == "gpu_1x_a10"
    assert values["lambda"]["ssh_key_name"] == "laptop"
    assert stored(run_soong, "lambda_api_key") == emu.api_key


def test_ctrl_c_in_the_wizard_leaves_the_old_config_and_keyring_untouched(run_soong, env, emu):
    config_file(env).parent.mkdir(parents=True)
    config_file(env).write_text("defaults:\n  model: mistral-7b\n")
    before = config_file(env).read_bytes()
    keyring_file = Path(os.environ["SOONG_TEST_KEYRING_FILE"])
    keyring_before = keyring_file.read_bytes() if keyring_file.exists() else None
    proc = subprocess.Popen([str(VENV_BIN / "soong"), "configure", "--interactive"], preexec_fn=default_sigint,
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write((emu.api_key + "\n").encode())
    proc.stdin.flush()
    seen = b""
    deadline = time.monotonic() + 30
    while b"Choose 1-" not in seen and time.monotonic() < deadline:
        seen += os.read(proc.stderr.fileno(), 4096)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    COMMAND_OUTPUT.append(("configure (interrupted)", (seen + out + err).decode(errors="replace")))
    assert proc.returncode == 130, err
    assert config_file(env).read_bytes() == before
    assert (keyring_file.read_bytes() if keyring_file.exists() else None) == keyring_before


def test_the_wizard_asks_what_a_third_party_provider_declared(run_soong, env, emu, tmp_path):
    from tests.core import acme_provider

    site = tmp_path / "site"
    info = site / "soong_acme-1.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: soong-acme\nVersion: 1.0.0\n")
    (info / "entry_points.txt").write_text(f"[soong]\nacme = {acme_provider.__name__}\n")
    acme = {"PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).resolve().parents[2])])}
    key = ssh_key(env)
    emu.api("POST", "/ssh-keys", {"name": "laptop", "public_key": key.with_suffix(".pub").read_text().strip()})
    secret = "acme-wizard-secret-5e7a"
    answers = "\n".join([
        emu.api_key, "qwen2.5-7b", "2", "", "1", "1", str(key),  # the built-in questions, as above
        "not-a-url",                  # acme.api_url: refused, asked again
        "https://api.acme.test/v9",   # acme.api_url
        "",                           # acme.region: Enter keeps it empty
        secret,                       # acme_api_key (hidden on a terminal)
        "y",                          # save
    ]) + "\n"
    result = run_soong("configure", "--interactive", input=answers, env=acme)
    assert result.returncode == 0, result.stderr
    assert "Base URL of the Acme Cloud API. (acme.api_url)" in result.stderr
    assert "'not-a-url' is not an http(s) URL" in result.stderr
    assert "acme.key_name" not in result.stderr and "acme.timeout_seconds" not in result.stderr  # not marked ask
    assert "a new acme_api_key (keyring)" in result.stderr and secret not in result.stdout + result.stderr
    values = yaml.safe_load(config_file(env).read_text())
    assert values["acme"] == {"api_url": "https://api.acme.test/v9"}
    shown = run_soong("secrets", "show", "acme_api_key", "--reveal", "-f", "value", "-c", "value", env=acme,
                      reveals_secret=True)
    assert shown.stdout.strip() == secret
    plain = run_soong("configure", "--interactive", input="\n".join([""] * 7 + ["y"]) + "\n")
    assert plain.returncode == 0, plain.stderr
    assert "Acme" not in plain.stderr and "acme_api_key" not in plain.stderr  # without the plugin, nothing is asked
    assert yaml.safe_load(config_file(env).read_text())["acme"] == {"api_url": "https://api.acme.test/v9"}  # kept
