"""The daemon's configuration: defaults, every bad value named by its key, secret files."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soong_daemon.config import FIELDS, ConfigError, load_config, parse_config
from soong_daemon.secretfile import read_secret
from tests.daemon.conftest import TOKEN, write_secret

MINIMAL = {"instance_id": "abc", "launched_at": "2025-03-01T12:00:00Z"}


def test_defaults_of_a_minimal_config():
    config = parse_config(MINIMAL)
    assert config.lease_hours == 4 and config.idle_timeout_minutes == 30 and config.hard_limit_hours == 8
    assert config.bind == "127.0.0.1:8080" and config.bind_host == "127.0.0.1" and config.bind_port == 8080
    assert config.sglang_metrics_url == "http://127.0.0.1:8000/metrics"
    assert config.time_scale == 1 and config.control_socket == ""
    assert config.launched_at == datetime(2025, 3, 1, 12, tzinfo=timezone.utc)


def test_yaml_timestamps_and_nulls(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("instance_id: abc\nlaunched_at: 2025-03-01T14:00:00+02:00\nwebhook_url:\nlease_hours: 2\n")
    config = load_config(path)
    assert config.launched_at == datetime(2025, 3, 1, 12, tzinfo=timezone.utc)
    assert config.webhook_url == "" and config.lease_hours == 2
    assert config.source_file == path.resolve()


@pytest.mark.parametrize("key,value,fragment", [
    ("lease_hours", 0, "greater than 0"),
    ("lease_hours", -1, "greater than 0"),
    ("lease_hours", "4", "must be a number"),
    ("lease_hours", True, "must be a number"),
    ("lease_hours", float("nan"), "finite"),
    ("lease_hours", 9, "must not exceed hard_limit_hours"),
    ("idle_timeout_minutes", 0, "greater than 0"),
    ("hard_limit_hours", 1e9, "at most"),
    ("warn_minutes", -5, "at least 0"),
    ("check_interval_seconds", 0, "at least 0.05"),
    ("workers", 0, "between 1 and 64"),
    ("workers", 2.5, "whole number"),
    ("bind", "8080", "host:port"),
    ("bind", "example.com:8080", "IP address"),
    ("bind", "127.0.0.1:70000", "host:port"),
    ("state_dir", "relative/dir", "absolute path"),
    ("token_file", 5, "must be a string"),
    ("provider_api_url", "http://api.example.com/api/v1", "https"),
    ("provider_api_url", "ftp://x/", "http:// or https://"),
    ("sglang_metrics_url", "not a url", "http:// or https://"),
    ("launched_at", "yesterday", "ISO 8601"),
    ("launched_at", "2025-03-01T12:00:00", "time zone"),
    ("launched_at", None, "required"),
    ("time_scale", 0.5, "at least 1"),
    ("control_socket", "gunicorn.ctl", "absolute path"),
    ("forwarded_ports", [8000, 0], "between 1 and 65535"),
    ("forwarded_ports", "8000", "list"),
    ("poweroff_command", "systemctl poweroff", "list of non-empty strings"),
    ("wall", "yes", "true or false"),
    ("model", "a\nb", "single line"),
])
def test_bad_values_name_their_key(key, value, fragment):
    with pytest.raises(ConfigError) as caught:
        parse_config({**MINIMAL, key: value})
    message = str(caught.value)
    assert message.startswith(f"config key '{key}'")
    assert fragment in message
    assert "\n" not in message


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"config key 'lease_hour': unknown key \(did you mean 'lease_hours'\?\)"):
        parse_config({**MINIMAL, "lease_hour": 3})


def test_instance_id_or_name_is_required():
    with pytest.raises(ConfigError, match="instance_id or instance_name"):
        parse_config({"launched_at": "2025-03-01T12:00:00Z"})
    assert parse_config({"instance_name": "soong-x", "launched_at": "2025-03-01T12:00:00Z"}).instance_id == ""


def test_launch_in_the_future_is_accepted_for_the_daemon_to_clamp():
    # Refusing it left nothing enforced when the laptop's clock was ahead; the daemon clamps it (soong_daemon.skew).
    now = datetime(2025, 3, 1, 12, tzinfo=timezone.utc)
    later = (now + timedelta(hours=2)).isoformat()
    assert parse_config({**MINIMAL, "launched_at": later}).launched_at > now


@pytest.mark.parametrize("text,fragment", [("a: [1", "not valid YAML at line"), ("- 1\n- 2\n", "YAML mapping"),
                                           ("just text", "YAML mapping")])
def test_unreadable_files(tmp_path, text, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")


values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                   st.text(max_size=30), st.lists(st.integers(-5, 70000), max_size=3),
                   st.lists(st.text(max_size=5), max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(FIELDS) + ["bogus", "lease"]), values, max_size=8))
def test_any_mapping_either_loads_or_fails_naming_a_key(extra):
    data = {**MINIMAL, **extra}
    try:
        config = parse_config(data)
    except ConfigError as exc:
        assert str(exc).startswith("config key '") or str(exc).startswith("the configuration")
        named = str(exc).split("'")[1]
        assert named in data or named in FIELDS
        return
    assert config.lease_hours <= config.hard_limit_hours
    assert config.instance_id or config.instance_name


# ------------------------------------------------------------------ secret files

def test_secret_file_is_read_and_stripped(tmp_path):
    assert read_secret(write_secret(tmp_path / "t", TOKEN), "token_file") == TOKEN


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_secret_file_readable_by_others_is_refused(tmp_path, mode):
    path = write_secret(tmp_path / "t", TOKEN, mode)
    with pytest.raises(ConfigError, match="token_file.*chmod 600") as caught:
        read_secret(path, "token_file")
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize("content", ["", "\n", "two words", "a\nb"])
def test_secret_file_must_hold_one_value(tmp_path, content):
    path = tmp_path / "t"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content.encode())
    os.close(fd)
    with pytest.raises(ConfigError, match="api_key_file"):
        read_secret(path, "api_key_file")


def test_missing_or_symlinked_secret_file(tmp_path):
    with pytest.raises(ConfigError, match="'api_key_file': cannot open"):
        read_secret(tmp_path / "none", "api_key_file")
    target = write_secret(tmp_path / "real", TOKEN)
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(ConfigError, match="cannot open"):
        read_secret(tmp_path / "link", "token_file")
