"""The instance's secret receiver as a real process: 0600 for its owner, atomic, only the names it takes."""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from soong.plugins.sglang import receive_secret

RECEIVER = Path(receive_secret.__file__)
TOKEN = "hf_canary-2c71a9e4"
#: A user other than the test's, to own what the receiver stores (only root can give files away).
OTHER = "nobody"


def _config(tmp_path: Path, owner: str | None) -> Path:
    config = tmp_path / "secrets.json"
    config.write_text(json.dumps({"boot_log": str(tmp_path / "boot.log"), "secrets": {
        "hf-token": {"path": str(tmp_path / "sglang" / "hf-token"), "owner": owner, "phase": "hf-token-delivered",
                     "what": "the Hugging Face token"}}}))
    return config


def _receive(config: Path, name: str, value: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RECEIVER), "--config", str(config), name], input=value,
                          capture_output=True, timeout=30)


def _owner() -> str | None:
    return OTHER if os.geteuid() == 0 else None


def test_stores_0600_for_its_owner_in_a_0700_folder_and_logs_the_phase(tmp_path):
    owner = _owner()
    done = _receive(_config(tmp_path, owner), "hf-token", TOKEN.encode() + b"\n")
    assert done.returncode == 0, done.stderr
    target = tmp_path / "sglang" / "hf-token"
    info = target.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and target.read_text() == TOKEN + "\n"
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    if owner:
        assert info.st_uid == pwd.getpwnam(owner).pw_uid and target.parent.stat().st_uid == info.st_uid
    log = (tmp_path / "boot.log").read_text().splitlines()
    assert len(log) == 1 and " phase=hf-token-delivered the Hugging Face token received over SSH" in log[0]
    assert TOKEN.encode() not in done.stdout + done.stderr and TOKEN not in log[0]
    again = _receive(_config(tmp_path, owner), "hf-token", TOKEN.encode())
    assert again.returncode == 0 and b"already had" in again.stdout
    assert len((tmp_path / "boot.log").read_text().splitlines()) == 1  # nothing changed, nothing logged


def test_a_planted_symlink_is_replaced_not_followed(tmp_path):
    (tmp_path / "sglang").mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (tmp_path / "sglang" / "hf-token").symlink_to(victim)
    done = _receive(_config(tmp_path, _owner()), "hf-token", TOKEN.encode())
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "keep me\n"
    target = tmp_path / "sglang" / "hf-token"
    assert not target.is_symlink() and target.read_text().strip() == TOKEN


@pytest.mark.parametrize("name,value,says", [
    ("lambda-api-key", b"secret_canary-91f", b"takes no secret named 'lambda-api-key'"),
    ("hf-token", b"canary-two\ncanary-lines", b"one non-empty word"),
    ("hf-token", b"", b"one non-empty word"),
    ("hf-token", b"x" * 5000, b"longer than 4096 bytes"),
])
def test_refuses_what_it_does_not_take_with_exit_2(tmp_path, name, value, says):
    done = _receive(_config(tmp_path, None), name, value)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert not (tmp_path / "sglang" / "hf-token").exists() and not (tmp_path / "boot.log").exists()
    assert not value or value[:10] not in done.stderr
