"""The daemon's YAML configuration: every key, its default and its check.

The file is written at boot by the instance bootstrap. Unknown keys and bad
values stop the daemon at start-up with one line naming the key; nothing in
this module touches the network or the secrets themselves (see ``secretfile``).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import yaml

DEFAULT_API_URL = "https://cloud.lambda.ai/api/v1"
#: How the API key reaches the daemon: written with the config at boot, or delivered over SSH later
#: (then ``api_key_file`` may be missing at start-up; /status says the daemon cannot end the instance yet).
API_KEY_DELIVERIES = ("user-data", "ssh")


class ConfigError(ValueError):
    """A configuration problem; the message names the key and says what is wrong."""


@dataclasses.dataclass(frozen=True)
class DaemonConfig:
    """A validated daemon configuration (times in seconds unless the name says otherwise)."""

    instance_id: str
    instance_name: str
    provider_api_url: str
    launched_at: datetime
    lease_hours: float
    idle_timeout_minutes: float
    hard_limit_hours: float
    warn_minutes: float
    check_interval_seconds: float
    bind: str
    workers: int
    state_dir: Path
    token_file: Path
    api_key_file: Path
    sglang_metrics_url: str
    n8n_metrics_url: str
    webhook_url: str
    model: str
    boot_log: Path
    time_scale: float
    control_socket: str
    forwarded_ports: tuple[int, ...]
    poweroff_command: tuple[str, ...]
    poweroff_after_minutes: float
    wall: bool
    preflight_grace_minutes: float = 10.0
    request_timeout_seconds: float = 5.0
    api_key_delivery: str = "user-data"
    hf_token_expected: bool = False
    source_file: Path | None = None

    @property
    def launched_at_epoch(self) -> float:
        """The launch time as seconds since the epoch."""
        return self.launched_at.timestamp()

    @property
    def bind_host(self) -> str:
        """The host part of ``bind`` (without IPv6 brackets)."""
        return _split_bind(self.bind)[0]

    @property
    def bind_port(self) -> int:
        """The port part of ``bind``."""
        return _split_bind(self.bind)[1]


# ---------------------------------------------------------------- value checks


def _fail(key: str, problem: str) -> ConfigError:
    return ConfigError(f"config key '{key}': {problem}")


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(key, f"must be a string, not {type(value).__name__}")
    if "\n" in value or "\x00" in value:
        raise _fail(key, "must be a single line")
    return value.strip()


def _number(minimum: float, maximum: float, *, exclusive_min: bool = False) -> Callable[[str, Any], float]:
    def check(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(key, f"must be a number, not {type(value).__name__}")
        value = float(value)
        if not math.isfinite(value):
            raise _fail(key, "must be a finite number")
        if value < minimum or (exclusive_min and value == minimum):
            relation = "greater than" if exclusive_min else "at least"
            raise _fail(key, f"must be {relation} {minimum:g}, not {value:g}")
        if value > maximum:
            raise _fail(key, f"must be at most {maximum:g}, not {value:g}")
        return value

    return check


def _integer(minimum: int, maximum: int) -> Callable[[str, Any], int]:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, f"must be a whole number, not {type(value).__name__}")
        if not minimum <= value <= maximum:
            raise _fail(key, f"must be between {minimum} and {maximum}, not {value}")
        return value

    return check


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, f"must be true or false, not {value!r}")
    return value


def _absolute_path(key: str, value: Any) -> Path:
    text = _string(key, value)
    if not text or not os.path.isabs(text):
        raise _fail(key, f"must be an absolute path, not {text!r}")
    return Path(text)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(*, allow_empty: bool, require_https_off_loopback: bool = False) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        text = _string(key, value)
        if not text:
            if allow_empty:
                return ""
            raise _fail(key, "must not be empty")
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _fail(key, "must be an http:// or https:// URL")
        if require_https_off_loopback and parts.scheme != "https" and not _is_loopback(parts.hostname):
            raise _fail(key, "must use https unless it points at this machine (the API key travels with it)")
        return text.rstrip("/") if require_https_off_loopback else text

    return check


def _split_bind(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(text)
    number = int(port)
    if not 0 < number < 65536:
        raise ValueError(text)
    return host, number


def _bind(key: str, value: Any) -> str:
    text = _string(key, value)
    try:
        host, _port = _split_bind(text)
    except ValueError:
        raise _fail(key, f"must be host:port (for example 127.0.0.1:8080), not {text!r}") from None
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise _fail(key, f"host must be an IP address or localhost, not {host!r}") from None
    return text


def _timestamp(key: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        text = _string(key, value)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise _fail(key, f"must be an ISO 8601 time such as 2025-01-31T12:00:00Z, not {text!r}") from None
    if moment.tzinfo is None:
        raise _fail(key, "must include a time zone (for example a trailing Z)")
    return moment.astimezone(timezone.utc)


def _ports(key: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise _fail(key, "must be a list of port numbers")
    check = _integer(1, 65535)
    return tuple(check(key, item) for item in value)


def _command(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise _fail(key, "must be a list of non-empty strings (an empty list turns it off)")
    return tuple(value)


def _control_socket(key: str, value: Any) -> str:
    text = _string(key, value)
    if text and not os.path.isabs(text):
        raise _fail(key, f"must be an absolute path or empty (off), not {text!r}")
    return text


def _any_string(key: str, value: Any) -> str:
    return _string(key, value)


def _api_key_delivery(key: str, value: Any) -> str:
    text = _string(key, value)
    if text not in API_KEY_DELIVERIES:
        raise _fail(key, f"must be one of {', '.join(API_KEY_DELIVERIES)}, not {text!r}")
    return text


_REQUIRED = object()

#: key -> (check, default). ``None`` in the YAML file means "use the default".
FIELDS: dict[str, tuple[Callable[[str, Any], Any], Any]] = {
    "instance_id": (_any_string, ""),
    "instance_name": (_any_string, ""),
    "provider_api_url": (_url(allow_empty=False, require_https_off_loopback=True), DEFAULT_API_URL),
    "launched_at": (_timestamp, _REQUIRED),
    "lease_hours": (_number(0, 720, exclusive_min=True), 4.0),
    "idle_timeout_minutes": (_number(0, 10080, exclusive_min=True), 30.0),
    "hard_limit_hours": (_number(0, 720, exclusive_min=True), 8.0),
    "warn_minutes": (_number(0, 1440), 10.0),
    "check_interval_seconds": (_number(0.05, 3600), 30.0),
    "bind": (_bind, "127.0.0.1:8080"),
    "workers": (_integer(1, 64), 2),
    "state_dir": (_absolute_path, "/var/lib/soong-daemon"),
    "token_file": (_absolute_path, "/etc/soong-daemon/token"),  # what soong's bootstrap writes
    "api_key_file": (_absolute_path, "/etc/soong-daemon/lambda-api-key"),
    "sglang_metrics_url": (_url(allow_empty=True), "http://127.0.0.1:8000/metrics"),
    "n8n_metrics_url": (_url(allow_empty=True), "http://127.0.0.1:5678/metrics"),
    "webhook_url": (_url(allow_empty=True), ""),
    "model": (_any_string, ""),
    "boot_log": (_absolute_path, "/var/log/soong-boot.log"),
    "time_scale": (_number(1, 1_000_000), 1.0),
    "control_socket": (_control_socket, ""),
    "forwarded_ports": (_ports, []),  # opt-in: probes hold such connections too (soong_daemon/activity.py)
    "poweroff_command": (_command, ["systemctl", "poweroff"]),
    "poweroff_after_minutes": (_number(0, 10080), 60.0),
    "wall": (_boolean, True),
    "preflight_grace_minutes": (_number(0, 1440), 10.0),
    "request_timeout_seconds": (_number(0.1, 25), 5.0),
    "api_key_delivery": (_api_key_delivery, "user-data"),
    "hf_token_expected": (_boolean, False),
}


def parse_config(data: Any, *, source: Path | None = None) -> DaemonConfig:
    """Validate a mapping (the parsed YAML) into a DaemonConfig; raise ConfigError naming the key.

    A ``launched_at`` in the future is not refused: the laptop's clock may be
    ahead of this one, and a refusal would leave nothing enforced. The daemon
    clamps it to its own first start instead (see ``soong_daemon.skew``).
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError("the configuration must be a YAML mapping of key: value")
    for key in data:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"config key '{key}': unknown key{hint}")
    values: dict[str, Any] = {}
    for key, (check, default) in FIELDS.items():
        raw = data.get(key)
        if raw is None:
            if default is _REQUIRED:
                raise _fail(key, "is required")
            raw = default
        values[key] = check(key, raw)
    config = DaemonConfig(source_file=source, **values)
    _check_together(config)
    return config


def _check_together(config: DaemonConfig) -> None:
    if not config.instance_id and not config.instance_name:
        raise _fail("instance_id", "instance_id or instance_name must be set")
    if config.lease_hours > config.hard_limit_hours:
        raise _fail("lease_hours", f"must not exceed hard_limit_hours ({config.hard_limit_hours:g})")


def load_config(path: str | os.PathLike) -> DaemonConfig:
    """Read and validate the YAML file at ``path``; raise ConfigError with a one-line reason."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}") from None
    return parse_config(data, source=path.resolve())
