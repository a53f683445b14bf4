"""Loading, validating, layering and saving soong's YAML configuration.

Precedence, highest first: command-line flags > environment (``SOONG_*``) >
profile overrides > the config file > defaults. Only the file layer is ever
written back, so flags and environment never rewrite the file.

Which keys exist is a :class:`~soong.core.config_schema.Schema`: core's keys plus
those the loaded plugins declare (the :class:`~soong.core.context.Context` passes
it; without one, core's keys alone). A key no loaded part of soong declares (a
typo, or a key of a plugin that is missing or broken) is a warning, and is kept
as it is when the file is written back.
"""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

from soong.core.atomic import write_private
from soong.core.config_schema import CORE_SCHEMA, Key, Schema
from soong.core.errors import ConfigError
from soong.core.paths import Paths

#: Profiles that exist without being written in the file (more can be defined under ``profiles``).
BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    # The local sandbox (docs/sandbox.md). ``soong sandbox up`` writes the emulator's URL, the
    # seeded key, file system and region into the profile's own file; until then the API URL
    # reaches nothing (port 9, discard), so the profile can never talk to the real Lambda API.
    "sandbox": {
        "lambda": {"api_url": "http://127.0.0.1:9/api/v1", "request_interval_seconds": 0.0,
                   "launch_interval_seconds": 0.0, "launch_lookup_seconds": 5.0},
        "tunnel": {"backend": "direct"},
        "services": {"n8n": False},
        "huggingface": {"check_gated": False},  # the sandbox downloads nothing and reaches no network
    },
}


def _flatten(data: Mapping[str, Any], warnings: list[str], where: str, schema: Schema,
             unknown: dict[str, Any] | None = None) -> dict[str, Any]:
    """Turn nested file data into ``{dotted.key: value}``; unknown keys become warnings (and go to ``unknown``)."""
    flat: dict[str, Any] = {}
    unknown = {} if unknown is None else unknown
    for top, value in data.items():
        if not isinstance(top, str):
            raise ConfigError(f"{where}: key {top!r} must be text")
        if top in schema.by_path:
            flat[top] = value
        elif top in schema.sections:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: section '{top}' must be a mapping, not {type(value).__name__}")
            for sub, subvalue in value.items():
                dotted = f"{top}.{sub}"
                if dotted in schema.by_path:
                    flat[dotted] = subvalue
                else:
                    warnings.append(_unknown(dotted, where, schema))
                    unknown[dotted] = subvalue
        elif isinstance(value, dict):
            near = difflib.get_close_matches(top, schema.sections, n=1, cutoff=0.6)
            hint = f"did you mean '{near[0]}'?" if near else "no loaded plugin declares it; see 'soong plugins'"
            warnings.append(f"{where}: unknown section '{top}' ignored ({hint})")
            unknown[top] = value
        else:
            warnings.append(_unknown(str(top), where, schema))
            unknown[top] = value
    return flat


def _unknown(dotted: str, where: str, schema: Schema) -> str:
    near = difflib.get_close_matches(dotted, list(schema.by_path) + schema.sections, n=1, cutoff=0.6)
    hint = f"; did you mean '{near[0]}'?" if near else ""
    return f"{where}: unknown key '{dotted}' ignored{hint}"


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted in sorted(flat):
        if "." in dotted:
            section, sub = dotted.split(".", 1)
            nested.setdefault(section, {})[sub] = flat[dotted]
        else:
            nested[dotted] = flat[dotted]
    return nested


def validate_file_data(data: Any, where: str = "config", *, schema: Schema = CORE_SCHEMA,
                       unknown: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Validate parsed YAML; return ``(flat values, warnings)`` or raise ConfigError.

    Entries ``schema`` does not know are warnings; given ``unknown``, they are put
    there as they were (``{dotted key or top-level name: value}``).
    """
    warnings: list[str] = []
    if data is None:
        return {}, warnings
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of sections, not {type(data).__name__}")
    flat = _flatten(data, warnings, where, schema, unknown)
    return {path: schema.by_path[path].coerce(value) for path, value in flat.items()}, warnings


class Config:
    """One resolved configuration: layered values plus the file layer that can be saved.

    :param file_values: validated ``{dotted.key: value}`` from the file.
    :param env: the environment to read ``SOONG_*`` overrides from.
    :param flags: ``{dotted.key: value}`` from the command line (highest precedence).
    :param profile: a profile name whose overrides apply above the file.
    :param schema: the keys that exist (core's and the loaded plugins').
    :param unknown: entries of the file no key of ``schema`` matches, kept to be written back.
    """

    def __init__(
        self,
        file_values: Mapping[str, Any] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        flags: Mapping[str, Any] | None = None,
        profile: str | None = None,
        path: Path | None = None,
        warnings: list[str] | None = None,
        base_values: Mapping[str, Any] | None = None,
        schema: Schema = CORE_SCHEMA,
        unknown: Mapping[str, Any] | None = None,
    ) -> None:
        self.schema = schema
        self.unknown = dict(unknown or {})
        self.file_values = dict(file_values or {})
        self.base_values = dict(base_values or {})
        self.path = path
        self.profile = profile
        self.warnings = list(warnings or [])
        self._env = dict(os.environ if env is None else env)
        self._flags = {path_: schema.key(path_).coerce(value) for path_, value in (flags or {}).items() if value is not None}
        self._profile_values = self._resolve_profile(profile)
        self._env_values = self._read_env()

    def _defined_profiles(self) -> dict[str, Any]:
        defined = dict(self.base_values.get("profiles") or {})
        defined.update(self.file_values.get("profiles") or {})
        return defined

    def _resolve_profile(self, profile: str | None) -> dict[str, Any]:
        if not profile or profile == "default":
            return {}
        in_files = self._defined_profiles()
        if profile not in BUILTIN_PROFILES and profile not in in_files and not (self.path and self.path.exists()):
            names = sorted(set(BUILTIN_PROFILES) | set(in_files))
            raise ConfigError(f"unknown profile '{profile}' (known: {', '.join(names) or 'none'})")
        # a built-in profile may name keys of a plugin that is not loaded now: those are skipped quietly
        flat, _skipped = validate_file_data(BUILTIN_PROFILES.get(profile, {}), where=f"profile '{profile}'",
                                            schema=self.schema)
        user, user_warnings = validate_file_data(in_files.get(profile) or {}, where=f"profile '{profile}'",
                                                 schema=self.schema)
        flat.update(user)
        self.warnings.extend(user_warnings)
        return flat

    def _read_env(self) -> dict[str, Any]:
        values = {}
        for key in self.schema.keys:
            var = key.env_var
            if var and var in self._env and self._env[var] != "":
                try:
                    values[key.path] = key.coerce(self._env[var], from_text=True)
                except ConfigError as exc:
                    raise ConfigError(f"{exc} (from ${var})") from None
        return values

    def get(self, path: str) -> Any:
        """The effective value of a dotted key (ConfigError for a key no loaded part of soong declares)."""
        key = self.schema.key(path)
        for layer in (self._flags, self._env_values, self.file_values, self._profile_values, self.base_values):
            if path in layer:
                return copy.deepcopy(layer[path])
        return copy.deepcopy(key.default)

    __getitem__ = get

    def source(self, path: str) -> str:
        """Where the effective value of ``path`` comes from: flag, env, profile, file or default."""
        for name, layer in (("flag", self._flags), ("env", self._env_values), ("file", self.file_values),
                            ("profile", self._profile_values), ("file", self.base_values)):
            if path in layer:
                return name
        return "default"

    def items(self) -> Iterator[tuple[Key, Any, str]]:
        """Every key with its effective value and source."""
        for key in self.schema.keys:
            yield key, self.get(key.path), self.source(key.path)

    def with_flags(self, **flags: Any) -> "Config":
        """A copy with more command-line values (``{"defaults.model": ...}`` spelled ``defaults__model``)."""
        merged = dict(self._flags)
        merged.update({name.replace("__", "."): value for name, value in flags.items() if value is not None})
        return Config(self.file_values, env=self._env, flags=merged, profile=self.profile, path=self.path,
                      warnings=self.warnings, base_values=self.base_values, schema=self.schema, unknown=self.unknown)

    def updated_file_values(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """The file layer with ``changes`` applied and validated (None removes a key).

        Entries of the file no loaded part of soong knows (:attr:`unknown`) are in it
        unchanged, so writing it back never drops a missing plugin's settings.
        """
        values = {**self.unknown, **self.file_values}
        for path, value in changes.items():
            if path not in self.schema.by_path:
                raise ConfigError(f"unknown config key '{path}'")
            if value is None:
                values.pop(path, None)
            else:
                values[path] = self.schema.by_path[path].coerce(value)
        return values

    def to_file_document(self) -> dict[str, Any]:
        """The nested mapping that :func:`save_config` writes."""
        return _nest({**self.unknown, **self.file_values})


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML safely; any syntax problem becomes a one-line ConfigError."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: {problem}{at}") from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def read_config_file(path: Path, *, schema: Schema = CORE_SCHEMA,
                     unknown: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Read and validate one config file; a missing file is an empty config (``unknown``: see :func:`validate_file_data`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, []
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return validate_file_data(parse_yaml(text, str(path)), where=str(path), schema=schema, unknown=unknown)


def load_config(
    paths: Paths | None = None,
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    profile: str | None = None,
    schema: Schema = CORE_SCHEMA,
) -> Config:
    """Load the configuration of ``profile`` (default: ``$SOONG_PROFILE`` or none) with the keys of ``schema``.

    The default profile reads ``paths.config_file``. Another profile starts from the
    default profile's file, applies the profile's overrides (built in, or under
    ``profiles.<name>`` in that file), then its own file under
    ``$XDG_STATE_HOME/soong/<name>/config/``, which is the one it writes.

    If soong's own file is missing but the legacy ``gpu-dashboard`` file exists,
    it is read (not moved) and a warning says how to migrate it.
    """
    env = os.environ if env is None else env
    profile = profile or env.get("SOONG_PROFILE") or None
    if profile == "default":
        profile = None
    paths = paths or Paths.from_env(env, profile)
    base_paths = Paths.from_env(env, None) if profile else paths
    base_unknown: dict[str, Any] = {}
    base_values, warnings = _read_base(base_paths, schema, base_unknown)
    if not profile:
        return Config(base_values, env=env, flags=flags, path=paths.config_file, warnings=warnings, schema=schema,
                      unknown=base_unknown)
    own_unknown: dict[str, Any] = {}
    own_values, own_warnings = read_config_file(paths.config_file, schema=schema, unknown=own_unknown)
    return Config(own_values, env=env, flags=flags, profile=profile, path=paths.config_file,
                  warnings=warnings + own_warnings, base_values=base_values, schema=schema, unknown=own_unknown)


def _read_base(paths: Paths, schema: Schema, unknown: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    path = paths.config_file
    if not path.exists() and paths.legacy_config_file is not None and paths.legacy_config_file.exists():
        values, warnings = read_config_file(paths.legacy_config_file, schema=schema)
        warnings.append(f"read the legacy config {paths.legacy_config_file}; run 'soong config migrate' to move it to {path}")
        return values, warnings
    return read_config_file(path, schema=schema, unknown=unknown)


def dump_yaml(document: Mapping[str, Any]) -> str:
    """The YAML text soong writes for a config document."""
    import yaml

    return "# soong configuration; see docs/configuration.md\n" + yaml.safe_dump(
        dict(document), sort_keys=True, default_flow_style=False, allow_unicode=True
    )


def save_config(file_values: Mapping[str, Any], path: Path, *, schema: Schema = CORE_SCHEMA) -> None:
    """Validate and atomically write the file layer (0600 file in a 0700 folder).

    Values of keys ``schema`` knows are validated; other entries (a missing plugin's
    keys, kept by :meth:`Config.updated_file_values`) are written as they are. An
    existing file that does not parse or validate is never overwritten: fix or move
    it first.
    """
    if path.exists():
        read_config_file(path, schema=schema)  # raises on a malformed or invalid file: never overwrite it
    checked = {key: schema.by_path[key].coerce(value) if key in schema.by_path else value
               for key, value in file_values.items()}
    write_private(path, dump_yaml(_nest(checked)))
