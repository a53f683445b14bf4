"""The rules for what plugins declare: config keys (``soong_config_keys``) and secrets (``soong_secrets``).

A plugin owns the section named after it (``-`` and ``.`` as ``_``), and one
named after each provider, tunnel backend and cost sink it registers: plugin
``acme``, or package ``soong-acme`` registering provider ``acme``, declares keys
``acme.NAME`` and secrets ``acme_NAME``. It cannot declare into core's sections,
a core key, or a key, secret name or environment variable that another plugin
declared first (built-ins are loaded first). A refused declaration fails the
plugin (:meth:`soong.core.plugins.PluginHost.declared`), so its keys are unknown
keys in the config file: a warning, never a crash.

:func:`schema` and :func:`secret_env_vars` turn the declarations of a
:class:`~soong.core.plugins.PluginHost` into what the config and the secret
store use.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from soong.core.errors import PluginError

_SECTION = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_SUB = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ENV = re.compile(r"^[A-Z][A-Z0-9_]{0,127}$")
#: Key kinds a plugin may declare (see :class:`soong.core.config_schema.Key`).
PLUGIN_KINDS = ("str", "int", "float", "bool", "names")


def plugin_section(plugin_name: str) -> str:
    """The config section (and secret prefix) a plugin owns: its name with ``-`` and ``.`` as ``_``."""
    return plugin_name.lower().replace("-", "_").replace(".", "_")


#: ``sections(plugin name)``: the sections that plugin owns (see the module docstring).
Sections = Callable[[str], "list[str]"]


def _own(name: str) -> list[str]:
    return [plugin_section(name)]


def _refuse_outside(what: str, info: Any, sections: list[str], form: str) -> PluginError:
    owned = " or ".join(form.format(s) for s in sections)
    return PluginError(f"{what} is outside the plugin's sections: plugin '{info.name}' declares {owned} "
                       "(NAME: lower-case letters, digits and '_')")


def check_key(info: Any, key: Any, accepted: list[tuple[str, Any]], sections: Sections = _own) -> Any:
    """``key`` if plugin ``info`` may declare it after ``accepted``; PluginError otherwise."""
    from soong.core.config_schema import KEYS_BY_PATH, SECTIONS, Key

    if not isinstance(key, Key):
        raise PluginError(f"{key!r} is not a soong.core.config_schema.Key")
    path = key.path if isinstance(key.path, str) else repr(key.path)
    section, _, sub = path.partition(".")
    if not _SECTION.match(section) or not _SUB.match(sub):
        raise _refuse_outside(f"config key '{path}'", info, sections(info.name), "keys '{}.NAME'")
    if path in KEYS_BY_PATH or section in SECTIONS:
        raise PluginError(f"config key '{path}' clashes with core's section '{section}'")
    if section != plugin_section(info.name) and section not in sections(info.name):  # own name first: no registry
        raise _refuse_outside(f"config key '{path}'", info, sections(info.name), "keys '{}.NAME'")
    holder = next((plugin for plugin, other in accepted if other.path == path), None)
    if holder is not None:
        raise PluginError(f"config key '{path}' is already declared by plugin '{holder}'")
    if key.kind not in PLUGIN_KINDS:
        raise PluginError(f"config key '{path}': kind {key.kind!r} is not one of {', '.join(PLUGIN_KINDS)}")
    if not isinstance(key.doc, str) or not key.doc.strip():
        raise PluginError(f"config key '{path}' has no doc")
    if key.default is not None or not key.nullable:
        try:
            key.coerce(key.default)
        except Exception as exc:
            raise PluginError(f"config key '{path}': its default {key.default!r} is refused: {exc}") from None
    return key


def check_secret(info: Any, secret: Any, accepted: list[tuple[str, Any]], sections: Sections = _own) -> Any:
    """``secret`` if plugin ``info`` may declare it after ``accepted``; PluginError otherwise."""
    from soong.core.secrets import _NAME, KNOWN_SECRETS, Secret

    if not isinstance(secret, Secret):
        raise PluginError(f"{secret!r} is not a soong.core.secrets.Secret")
    name = secret.name if isinstance(secret.name, str) else repr(secret.name)

    def within(owned: list[str]) -> bool:
        return any(name.startswith(f"{s}_") and len(name) > len(s) + 1 for s in owned)

    if not _NAME.match(name) or not (within(_own(info.name)) or within(sections(info.name))):
        raise _refuse_outside(f"secret '{name}'", info, sections(info.name), "secrets '{}_NAME'")
    if not isinstance(secret.env_var, str) or not _ENV.match(secret.env_var):
        raise PluginError(f"secret '{name}': {secret.env_var!r} is not an environment variable name")
    if not isinstance(secret.doc, str) or not secret.doc.strip():
        raise PluginError(f"secret '{name}' has no doc")
    if name in KNOWN_SECRETS or secret.env_var in KNOWN_SECRETS.values():
        raise PluginError(f"secret '{name}' ({secret.env_var}) clashes with one of core's secrets")
    for plugin, other in accepted:
        if other.name == name or other.env_var == secret.env_var:
            raise PluginError(f"secret '{name}' ({secret.env_var}) clashes with '{other.name}' ({other.env_var}) "
                              f"of plugin '{plugin}'")
    return secret


def schema(host: Any) -> Any:
    """The :class:`~soong.core.config_schema.Schema` of core's keys and those ``host``'s plugins declare."""
    from soong.core.config_schema import Schema

    return Schema(host.config_keys())


def secret_env_vars(host: Any) -> dict[str, str]:
    """``{secret name: environment variable}`` for every secret ``host``'s plugins declare."""
    return {secret.name: secret.env_var for _plugin, secret in host.secrets()}
