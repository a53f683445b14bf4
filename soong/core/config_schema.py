"""The configuration schema: every key, its type, default, range and environment variable.

Core's own keys are :data:`KEYS`. Plugins declare theirs, under their own section,
through the ``soong_config_keys`` hook (:mod:`soong.core.declarations`); a
:class:`Schema` is core's keys plus what the loaded plugins declared.
``docs/configuration.md`` is generated from both and a test keeps it current.
Keys are dotted (``defaults.model``); the environment variable of a key is
``SOONG_`` + the key upper-cased with dots as underscores (``SOONG_DEFAULTS_MODEL``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable, Iterable

from soong.core.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclasses.dataclass(frozen=True)
class Key:
    """One configuration key."""

    path: str
    kind: str  # str | int | float | bool | names (a list of text; comma-separated on the command line) | list | map
    default: Any
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    check: Callable[[Any], str | None] | None = None
    env: bool = True
    #: ``soong configure`` asks for this key (plugin keys; core's own questions are built in).
    ask: bool = False
    #: The base URL of a provider's API: a local-only profile (the sandbox) accepts only a loopback address.
    api_endpoint: bool = False

    @property
    def env_var(self) -> str | None:
        """The environment variable that overrides the key, if any."""
        if not self.env:
            return None
        return "SOONG_" + self.path.upper().replace(".", "_")

    def coerce(self, value: Any, *, from_text: bool = False) -> Any:
        """Validate ``value`` (parsing it from text if ``from_text``); raise ConfigError naming the key."""
        if value is None:
            if self.nullable:
                return None
            raise ConfigError(f"config key '{self.path}' must not be empty")
        if from_text and isinstance(value, str):
            value = _parse_text(self, value)
        value = _check_type(self, value)
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"config key '{self.path}' must be one of {', '.join(self.choices)}, not {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"config key '{self.path}' must be at least {self.minimum:g}, not {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"config key '{self.path}' must be at most {self.maximum:g}, not {value!r}")
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise ConfigError(f"config key '{self.path}': {problem}")
        return value


def _parse_text(key: Key, text: str) -> Any:
    if key.kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"config key '{key.path}' must be true or false, not {text!r}")
    if key.kind == "int":
        try:
            return int(text.strip())
        except ValueError:
            raise ConfigError(f"config key '{key.path}' must be a whole number, not {text!r}") from None
    if key.kind == "float":
        try:
            return float(text.strip())
        except ValueError:
            raise ConfigError(f"config key '{key.path}' must be a number, not {text!r}") from None
    if key.kind == "names":
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def _check_type(key: Key, value: Any) -> Any:
    kind = key.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key.path}' must be true or false, not {value!r}")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key.path}' must be a whole number, not {value!r}")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key.path}' must be a number, not {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"config key '{key.path}' must be a finite number, not {value!r}")
    elif kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key.path}' must be text, not {value!r}")
    elif kind == "names":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"config key '{key.path}' must be a list of names, not {value!r}")
    elif kind == "list":
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key.path}' must be a list, not {type(value).__name__}")
    elif kind == "map":
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key.path}' must be a mapping, not {type(value).__name__}")
    return value


def _name(value: str) -> str | None:
    if not _NAME.match(value):
        return f"{value!r} is not a valid name (letters, digits, '.', '_', '-'; at most 64)"
    return None


def url_check(value: str) -> str | None:
    """Why ``value`` is not an http(s) URL (None when it is); a ``check`` for URL keys."""
    if not re.match(r"^https?://[^\s/]+", value):
        return f"{value!r} is not an http(s) URL"
    return None


def _command(value: list) -> str | None:
    if not all(isinstance(word, str) and word for word in value):
        return "must be a list of non-empty strings (the program first)"
    return None


def name_check(value: str) -> str | None:
    """Why ``value`` is not a valid resource name (None when it is); a ``check`` for name keys."""
    return _name(value)


_url = url_check


def _command_overrides(value: list) -> str | None:
    for entry in value:
        if not isinstance(entry, str) or entry.count(":") != 1 or not all(entry.split(":")):
            return f"{entry!r} is not a PACKAGE:COMMAND entry (for example soong-acme:stop)"
    return None


def _custom_models(value: list) -> str | None:
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            return f"entry {index} must be a mapping with at least 'id' and 'hf_path'"
        if not isinstance(entry.get("id"), str) or not entry.get("id"):
            return f"entry {index} has no 'id'"
    return None


def _profiles(value: dict) -> str | None:
    for name, overrides in value.items():
        if not isinstance(name, str) or not _NAME.match(name):
            return f"profile name {name!r} is not valid"
        if not isinstance(overrides, dict):
            return f"profile '{name}' must be a mapping of overrides"
    return None


PORT = dict(minimum=1, maximum=65535)

KEYS: tuple[Key, ...] = (
    Key("defaults.model", "str", "llama-3.1-8b", "Model served when start gets no --model."),
    Key("defaults.gpu", "str", None, "Instance type used when start gets no --gpu (None: recommended).", nullable=True),
    Key("defaults.lease_hours", "float", 4.0, "Lease of a new instance, in hours.", minimum=0.25, maximum=8),
    Key("defaults.idle_timeout_minutes", "int", 30, "Idle minutes before the daemon terminates.", minimum=5, maximum=480),
    Key("defaults.hard_limit_hours", "float", 8.0, "Hours from launch after which the instance always ends.", minimum=0.5, maximum=8),
    Key("status_daemon.port", "int", 8080, "Port of the status daemon on the instance.", **PORT),
    Key("start.ready_timeout_minutes", "float", None, "Longest wait for a new instance to serve its model (None: 12 min + 2 min per GPU).", nullable=True, minimum=0.01, maximum=240),
    Key("start.poll_seconds", "float", 5.0, "Seconds between checks while start waits for the instance.", minimum=0.05, maximum=120),
    Key("start.capacity_poll_seconds", "float", 30.0, "Seconds between capacity checks of start --retry-until-up (launches also keep lambda.launch_interval_seconds apart).", minimum=0, maximum=3600),
    Key("stop.wait_seconds", "float", 300.0, "Longest wait for the provider to report a terminated instance.", minimum=1, maximum=3600),
    Key("stop.poll_seconds", "float", 3.0, "Seconds between checks while stop waits for termination.", minimum=0.05, maximum=120),
    Key("stop.attempts", "int", 3, "Terminate requests stop sends before it reports the instance as unconfirmed.", minimum=1, maximum=20),
    Key("status.daemon_timeout_seconds", "float", 3.0, "Read timeout of one call to an instance's status daemon.", minimum=0.1, maximum=60),
    Key("status.instance_types_cache_seconds", "float", 600.0, "How long status reuses the provider's instance types (0: always ask).", minimum=0, maximum=86400),
    Key("ssh.key_path", "str", "~/.ssh/id_ed25519", "Private key used to reach instances."),
    Key("ssh.user", "str", None, "Login user on the instance (None: the provider's, ubuntu on Lambda).", nullable=True),
    Key("ssh.port", "int", 22, "SSH port on the instance.", **PORT),
    Key("tunnel.backend", "str", "plumbum-ssh", "Tunnel backend (plumbum-ssh, direct or a plugin's)."),
    Key("tunnel.sglang_port", "int", 8000, "Local port for SGLang's OpenAI-compatible API.", **PORT),
    Key("tunnel.n8n_port", "int", 5678, "Local port for n8n.", **PORT),
    Key("tunnel.status_port", "int", 8080, "Local port for the status daemon.", **PORT),
    Key("tunnel.direct_exec", "list", [], "With the direct backend: a local command that runs a command on an instance (its address, then the command, are appended; the sandbox sets it). Empty: the direct backend cannot run commands, so soong cannot deliver secrets through it.", check=_command, env=False),
    Key("huggingface.endpoint", "str", None, "Hugging Face Hub URL for the gated-model check before a launch (None: $HF_ENDPOINT, else https://huggingface.co).", nullable=True, check=_url),
    Key("huggingface.check_gated", "bool", True, "Before launching, ask the Hub whether the model is gated and hf_token may download it."),
    Key("services.sglang", "bool", True, "Run SGLang on the instance."),
    Key("services.n8n", "bool", True, "Run n8n on the instance."),
    Key("services.source_env_sh", "bool", False, "Source secrets/env.sh from the persistent file system into SGLang's and n8n's environment (as their own users). Off by default: anyone who can write the file system controls that file; see docs/security.md."),
    Key("secrets.backend", "str", "keyring", "Where secrets live: keyring, or file (0600 plaintext, opt-in).", choices=("keyring", "file")),
    Key("secrets.api_key_delivery", "str", "user-data", "How the Lambda API key reaches an instance's daemon: user-data (in the user data, so the instance can end itself from its first second), or ssh (never in the user data: soong delivers it over SSH once the daemon answers; until then only the watchdog can end the instance, so install it). See docs/security.md.", choices=("user-data", "ssh")),
    Key("budget.monthly_usd", "float", None, "Monthly spend cap checked by start.", nullable=True, minimum=0),
    Key("budget.max_hourly_usd", "float", None, "Highest hourly price start accepts.", nullable=True, minimum=0),
    Key("watchdog.unreachable_minutes", "int", 15, "Minutes a daemon may be unreachable past its lease before the watchdog terminates.", minimum=1, maximum=1440),
    Key("watchdog.interval_minutes", "int", 5, "How often the installed watchdog runs.", minimum=1, maximum=60),
    Key("costs.jsonl_path", "str", None, "File the jsonl cost sink appends to (None: cost-events.jsonl in the data dir).", nullable=True),
    Key("costs.queue_max", "int", 1000, "Most undelivered cost events kept per sink (oldest dropped beyond).", minimum=10, maximum=100000),
    Key("costs.sink_timeout_seconds", "float", 10.0, "Seconds one cost sink may take to accept an event.", minimum=0.5, maximum=120),
    Key("plugins.allowed_command_overrides", "names", [], "Third-party commands allowed to replace a built-in one, as PACKAGE:COMMAND entries, comma-separated (for example soong-acme:stop); any other clash runs the built-in with a warning.", check=_command_overrides),
    Key("custom_models", "list", [], "Extra model catalog entries (see docs/models.md).", check=_custom_models, env=False),
    Key("profiles", "map", {}, "Named sets of overrides selected by --profile / SOONG_PROFILE.", check=_profiles, env=False),
)

KEYS_BY_PATH = {key.path: key for key in KEYS}
SECTIONS = sorted({key.path.split(".")[0] for key in KEYS if "." in key.path})


class Schema:
    """Every key a configuration knows: core's, then each plugin's (``owners`` names the plugin of each).

    :param plugin_keys: ``(plugin name, key)`` pairs, already checked by :mod:`soong.core.declarations`.
    """

    def __init__(self, plugin_keys: Iterable[tuple[str, Key]] = ()) -> None:
        declared = list(plugin_keys)
        self.keys: tuple[Key, ...] = KEYS + tuple(key for _plugin, key in declared)
        self.by_path: dict[str, Key] = {key.path: key for key in self.keys}
        self.owners: dict[str, str] = {key.path: plugin for plugin, key in declared}
        self.sections: list[str] = sorted({key.path.split(".")[0] for key in self.keys if "." in key.path})

    def key(self, path: str) -> Key:
        """The key at ``path``; ConfigError when no loaded part of soong declares it."""
        try:
            return self.by_path[path]
        except KeyError:
            raise ConfigError(f"unknown config key '{path}'") from None

    def owner(self, path: str) -> str | None:
        """The plugin that declared ``path`` (None: core)."""
        return self.owners.get(path)


#: Core's keys alone (what a configuration knows before any plugin is loaded).
CORE_SCHEMA = Schema()
