"""The firewall check as a user meets it: ``start`` warns before launching, ``configure`` offers and applies the fix.

Everything runs as subprocesses against the emulator under gunicorn.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import yaml

from tests.conftest import COMMAND_OUTPUT, VENV_BIN
from tests.lifecycle.conftest import live_instances
from tests.lifecycle.test_configure_cli import config_file, ssh_key, stored

GLOBAL = "/firewall-rulesets/global"
SSH = {"protocol": "tcp", "port_range": [22, 22], "source_network": "0.0.0.0/0", "description": "SSH"}
SGLANG = {"protocol": "tcp", "port_range": [8000, 8000], "source_network": "0.0.0.0/0", "description": "sglang"}
UDP = {"protocol": "udp", "port_range": [1, 65535], "source_network": "0.0.0.0/0", "description": "udp"}
FIX = "'soong configure --ssh-only-firewall'"


def open_firewall(emu):
    assert emu.api("PATCH", GLOBAL, {"rules": [SSH, SGLANG, UDP]}).status_code == 200


def global_rules(emu):
    return emu.api("GET", GLOBAL).json()["data"]["rules"]


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("soong: warning:")]


def test_start_warns_once_before_launching_naming_the_open_ports_and_the_fix(run_soong, soong_env, emu):
    open_firewall(emu)
    result = run_soong("start", "-y", "--no-wait")
    assert result.returncode == 0, result.stderr
    [line] = warnings(result.stderr)
    assert "more than SSH" in line and "in us-east-1" in line
    assert "tcp port 8000 from anywhere; udp ports 1-65535 from anywhere" in line and FIX in line
    lines = result.stderr.splitlines()
    assert lines.index(line) < next(i for i, t in enumerate(lines) if t.startswith("soong: launched "))
    assert len(live_instances(emu)) == 1


def test_start_says_nothing_about_a_firewall_that_lets_in_only_ssh(run_soong, soong_env, emu):
    emu.clear_requests()
    result = run_soong("start", "-y", "--no-wait")
    assert result.returncode == 0, result.stderr
    assert "firewall" not in result.stderr and warnings(result.stderr) == []
    assert any(e["path"] == GLOBAL for e in emu.requests())  # it was read, and found SSH-only


@pytest.mark.parametrize("fault", [{"action": "error", "status": 500}, {"action": "error", "status": 403,
                                                                       "code": "global/account-inactive"},
                                   {"action": "drop"}])
def test_a_firewall_that_cannot_be_read_is_a_warning_and_the_launch_goes_on(run_soong, soong_env, emu, fault):
    emu.add_fault(path=GLOBAL, **fault)
    result = run_soong("start", "-y", "--no-wait")
    assert result.returncode == 0, result.stderr
    [line] = warnings(result.stderr)
    assert "could not read the provider's inbound firewall rules" in line and "launching without checking" in line
    assert len(live_instances(emu)) == 1
    assert len([e for e in emu.requests() if e["path"] == GLOBAL]) == 1  # read once: no retries holding it up


def test_a_dry_run_warns_too_and_launches_nothing(run_soong, soong_env, emu):
    open_firewall(emu)
    result = run_soong("start", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert FIX in warnings(result.stderr)[0] and emu.instances() == []


def test_the_named_fix_leaves_only_ssh_and_the_next_start_is_quiet(run_soong, soong_env, emu):
    open_firewall(emu)
    emu.clear_requests()
    fixed = run_soong("configure", "--ssh-only-firewall")
    assert fixed.returncode == 0, fixed.stderr
    assert "closes: tcp port 8000 from anywhere; udp ports 1-65535 from anywhere" in fixed.stderr
    assert "keeps open: tcp port 22 from anywhere" in fixed.stderr
    assert "every region but us-south-1" in fixed.stderr and "soong did not start" in fixed.stderr
    assert "now let in only SSH" in fixed.stderr
    assert global_rules(emu) == [SSH]
    again = run_soong("configure", "--ssh-only-firewall")
    assert again.returncode == 0 and "already let in only SSH" in again.stderr
    assert len([e for e in emu.requests() if e["method"] == "PATCH"]) == 1  # the second run changed nothing
    start = run_soong("start", "-y", "--no-wait")
    assert start.returncode == 0 and warnings(start.stderr) == []


def test_configure_in_a_region_without_a_firewall_says_so_and_fixes_the_rules_elsewhere(run_soong, soong_env, emu):
    open_firewall(emu)
    result = run_soong("configure", "--ssh-only-firewall", "--region", "us-south-1")
    assert result.returncode == 0, result.stderr
    assert "do not apply in us-south-1" in result.stderr and "every port" in result.stderr
    assert global_rules(emu) == [SSH]


@pytest.fixture
def wizard_env(soong_env, monkeypatch, isolated_env):
    monkeypatch.delenv("LAMBDA_API_KEY")
    monkeypatch.delenv("SOONG_DAEMON_TOKEN")
    return isolated_env


def wizard_answers(emu, key, firewall: str | None, save: str) -> str:
    answers = [emu.api_key, "qwen2.5-7b", "2", "", "1", "1", str(key)]
    if firewall is not None:
        answers.append(firewall)
    return "\n".join([*answers, save]) + "\n"


def test_the_wizard_explains_the_change_and_makes_it_only_when_saved(run_soong, wizard_env, emu):
    key = ssh_key(wizard_env)
    emu.api("POST", "/ssh-keys", {"name": "laptop", "public_key": key.with_suffix(".pub").read_text().strip()})
    open_firewall(emu)

    declined = run_soong("configure", "--interactive", input=wizard_answers(emu, key, "y", "n"))
    assert declined.returncode == 0, declined.stderr
    assert "let in more than SSH: tcp port 8000 from anywhere" in declined.stderr
    assert "closes: tcp port 8000 from anywhere" in declined.stderr and "every region but us-south-1" in declined.stderr
    assert "Leave only SSH (22/tcp) open?" in declined.stderr
    assert "leave only SSH open in the account's global firewall rules" in declined.stderr  # in the review
    assert global_rules(emu) == [SSH, SGLANG, UDP] and not config_file(wizard_env).exists()

    kept = run_soong("configure", "--interactive", input=wizard_answers(emu, key, "", "y"))  # Enter: no
    assert kept.returncode == 0, kept.stderr
    assert global_rules(emu) == [SSH, SGLANG, UDP]

    applied = run_soong("configure", "--interactive", input=wizard_answers(emu, key, "y", "y"))
    assert applied.returncode == 0, applied.stderr
    assert global_rules(emu) == [SSH]
    assert yaml.safe_load(config_file(wizard_env).read_text())["defaults"]["model"] == "qwen2.5-7b"

    quiet = run_soong("configure", "--interactive", input=wizard_answers(emu, key, None, "y"))
    assert quiet.returncode == 0, quiet.stderr
    assert "let in only SSH (22/tcp)" in quiet.stderr and "Leave only SSH" not in quiet.stderr


def test_rules_changed_while_the_wizard_asked_are_not_overwritten_and_nothing_else_is_saved(run_soong, wizard_env,
                                                                                            emu):
    key = ssh_key(wizard_env)
    emu.api("POST", "/ssh-keys", {"name": "laptop", "public_key": key.with_suffix(".pub").read_text().strip()})
    open_firewall(emu)
    proc = subprocess.Popen([str(VENV_BIN / "soong"), "configure", "--interactive"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write("\n".join([emu.api_key, "qwen2.5-7b", "2", "", "1", "1", str(key), ""]).encode())
    proc.stdin.flush()
    seen = b""
    deadline = time.monotonic() + 60
    while b"Leave only SSH (22/tcp) open?" not in seen and time.monotonic() < deadline:
        seen += os.read(proc.stderr.fileno(), 4096)
    emu.api("PATCH", GLOBAL, {"rules": [SSH, SGLANG]})  # someone else changes them meanwhile
    out, err = proc.communicate(b"y\ny\n", timeout=60)
    COMMAND_OUTPUT.append(("configure (rules moved)", (seen + out + err).decode(errors="replace")))
    assert proc.returncode == 9, err
    assert b"changed since soong read them" in err
    assert global_rules(emu) == [SSH, SGLANG]
    assert not config_file(wizard_env).exists()
    assert stored(run_soong, "lambda_api_key") is None
