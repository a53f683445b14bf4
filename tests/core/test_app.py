"""The cliff app: commands, exit codes, one-line errors, --debug, confirmations."""

from __future__ import annotations

import io
import json

import pytest

from soong.core.app import SoongApp
from soong.core.errors import EXIT_CODES


def test_every_command_builds_its_parser_and_help():
    app = SoongApp(stdout=io.StringIO(), stderr=io.StringIO())
    names = [name for name, _ep in app.command_manager]
    assert "plugins" in names and "models list" in names
    for name, ep in app.command_manager:
        factory = ep.load()
        command = factory(app, None, cmd_name=name) if "cmd_name" in factory.__init__.__code__.co_varnames else factory(app, None)
        parser = command.get_parser(f"soong {name}")
        assert parser.format_help().startswith("usage:")
        assert command.get_description(), f"command {name!r} has no description"


def test_config_set_show_unset(run_soong):
    assert run_soong("config", "set", "defaults.lease_hours", "2.5").returncode == 0
    shown = json.loads(run_soong("config", "show", "-f", "json").stdout)
    row = next(r for r in shown if r["Key"] == "defaults.lease_hours")
    assert row["Value"] == "2.5" and row["Source"] == "file" and row["Environment variable"] == "SOONG_DEFAULTS_LEASE_HOURS"
    assert run_soong("config", "unset", "defaults.lease_hours").returncode == 0
    shown = json.loads(run_soong("config", "show", "-f", "json").stdout)
    assert next(r for r in shown if r["Key"] == "defaults.lease_hours")["Source"] == "default"


@pytest.mark.parametrize(
    "args, code, text",
    [
        (("config", "set", "defaults.lease_hours", "99"), 3, "must be at most 8"),
        (("config", "set", "no.such", "1"), 3, "is not a key that can be set"),
        (("models", "list", "--no-such-flag"), 2, "unrecognized arguments"),
    ],
)
def test_bad_input_is_one_line_with_documented_code(run_soong, args, code, text):
    result = run_soong(*args)
    assert result.returncode == code and code in EXIT_CODES
    assert text in result.stderr and "Traceback" not in result.stderr


def test_bad_config_file_breaks_commands_cleanly_and_is_kept(run_soong, isolated_env):
    path = isolated_env / ".config" / "soong" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("ssh:\n  port: seventy\n")
    result = run_soong("models", "list")
    assert result.returncode == 3 and "'ssh.port' must be a whole number" in result.stderr
    assert result.stderr.count("\n") == 1
    assert run_soong("config", "set", "ssh.user", "me").returncode == 3
    assert path.read_text() == "ssh:\n  port: seventy\n"
    debug = run_soong("--debug", "models", "list")
    assert "Traceback" in debug.stderr and debug.returncode == 3


def test_unknown_key_in_file_warns_but_works(run_soong, isolated_env):
    path = isolated_env / ".config" / "soong" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("defaults:\n  modle: x\n")
    result = run_soong("models", "list", "-f", "value", "-c", "ID")
    assert result.returncode == 0 and "did you mean 'defaults.model'" in result.stderr


def test_confirmation_without_terminal_refuses(run_soong, isolated_env):
    legacy = isolated_env / ".config" / "gpu-dashboard" / "config.yaml"
    legacy.parent.mkdir(parents=True)
    legacy.write_text("defaults:\n  model: mistral-7b\n")
    refused = run_soong("config", "migrate", input="")
    assert refused.returncode == 9 and "--yes" in refused.stderr
    assert not (isolated_env / ".config" / "soong" / "config.yaml").exists()
    done = run_soong("config", "migrate", "--yes")
    assert done.returncode == 0
    assert "mistral-7b" in (isolated_env / ".config" / "soong" / "config.yaml").read_text()
    again = run_soong("config", "migrate", "--yes")
    assert again.returncode == 3 and "already exists" in again.stderr


def test_exit_code_table_is_documented():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text()
    for code, meaning in EXIT_CODES.items():
        assert f"| {code} | {meaning} |" in text, f"exit code {code} missing from docs/errors.md"
