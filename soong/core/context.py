"""The runtime context handed to commands and plugin objects.

It holds the resolved config, the profile's paths, the secret store, the plugin
host and the clock, each built on first use so that a command pays only for what
it touches. Loading the config loads the plugins first, because they declare
keys of their own (``soong_config_keys``); the secret store knows the secrets
they declare (``soong_secrets``).
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
from typing import Any, Callable, Mapping

from soong.core.config import Config, load_config
from soong.core.errors import NotFoundError, PluginError
from soong.core.paths import Paths

#: Profiles that must never reach a real account: they ignore secrets from the
#: environment and accept only loopback addresses in provider API keys (keys
#: declared with ``api_endpoint=True``).
LOCAL_ONLY_PROFILES = frozenset({"sandbox"})


def _is_loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    return host == "localhost" or host.startswith("127.") or host == "::1"


def _remote_endpoint(config: Config, key: Any, profile: str) -> Any:
    """The ConfigError for an API key of ``config`` that leaves this machine, or None."""
    from soong.core.errors import ConfigError

    url = config.get(key.path)
    if not url or _is_loopback(str(url)):
        return None
    source = config.source(key.path)
    unset = f"unset ${key.env_var}" if source == "env" and key.env_var else f"set {key.path} to a loopback address"
    return ConfigError(f"the '{profile}' profile only talks to a local emulator, but {key.path} is {url} "
                       f"(from {source}); {unset} or use another profile")


def _check_local_only(config: Config, profile: str) -> None:
    """Refuse a provider API address that was set (not a default) and is not loopback."""
    for key in config.schema.keys:
        if key.api_endpoint and config.source(key.path) != "default":
            problem = _remote_endpoint(config, key, profile)
            if problem is not None:
                raise problem


def _provider_methods() -> dict:
    from soong.core.plugin_guard import PROVIDER_RETURNS

    return PROVIDER_RETURNS


def _tunnel_methods() -> dict:
    from soong.core.plugin_guard import TUNNEL_METHODS

    return TUNNEL_METHODS


#: Plugin objects whose interface methods are wrapped so that their errors name the plugin.
_GUARDED_METHODS = {"providers": _provider_methods, "tunnel_backends": _tunnel_methods}
_LABELS = {"providers": "provider", "tunnel_backends": "tunnel backend"}


def utcnow() -> _dt.datetime:
    """The current time, timezone-aware in UTC (the default clock)."""
    return _dt.datetime.now(_dt.timezone.utc)


class Context:
    """Everything a command or plugin needs at run time.

    :param profile: profile name (None: ``$SOONG_PROFILE`` or the default profile).
    :param env: the environment to read (tests pass their own).
    :param clock: returns an aware ``datetime``; tests inject a fake one.
    :param plugin_host: an existing host (tests pass one with their own plugins).
    """

    def __init__(self, *, profile: str | None = None, env: Mapping[str, str] | None = None,
                 clock: Callable[[], _dt.datetime] = utcnow, plugin_host: Any = None,
                 config: Config | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.profile = profile or self.env.get("SOONG_PROFILE") or None
        self.clock = clock
        self._plugin_host = plugin_host
        if plugin_host is not None and getattr(plugin_host, "context", None) is None:
            plugin_host.context = self
        self._config = config
        self._declaring = False
        self._instances: dict[tuple[str, str], Any] = {}

    @functools.cached_property
    def paths(self) -> Paths:
        """The profile's directories."""
        return Paths.from_env(self.env, self.profile)

    @property
    def config(self) -> Config:
        """The resolved configuration (loaded on first use, with the keys the plugins declare)."""
        if self._config is None:
            config = load_config(self.paths, env=self.env, profile=self.profile, schema=self._schema())
            if self.profile in LOCAL_ONLY_PROFILES:
                _check_local_only(config, self.profile)
            self._config = config
        return self._config

    def _schema(self) -> Any:
        """Core's keys and the plugins' (a plugin reading the config while declaring keys fails, alone).

        The plugins' secrets are declared here too, so that their values in the
        environment are masked before anything (a config error included) is shown.
        """
        from soong.core.declarations import schema, secret_env_vars
        from soong.core.redact import register_secret

        if self._declaring:
            raise PluginError("the configuration is not loaded yet: plugins declare their keys first")
        self._declaring = True
        try:
            found = schema(self.plugins)
            for var in secret_env_vars(self.plugins).values():
                register_secret(self.env.get(var))
            return found
        finally:
            self._declaring = False

    def set_flags(self, **flags: Any) -> None:
        """Apply command-line values on top of the configuration (never written back)."""
        self._config = self.config.with_flags(**flags)

    @functools.cached_property
    def secrets(self) -> Any:
        """The :class:`~soong.core.secrets.SecretStore` of this profile."""
        from soong.core.declarations import secret_env_vars
        from soong.core.secrets import SecretStore

        service = "soong" if not self.profile or self.profile == "default" else f"soong-{self.profile}"
        # A local-only profile never picks up the real account's secrets from the environment.
        local_only = self.profile in LOCAL_ONLY_PROFILES
        backend = self.config.get("secrets.backend")
        declared = secret_env_vars(self.plugins)
        return SecretStore(service=service, backend=backend,
                           file_path=self.paths.config_dir / "secrets.yaml", env={} if local_only else self.env,
                           warn_plaintext=not local_only, declared=declared)

    @property
    def plugins(self) -> Any:
        """The :class:`~soong.core.plugins.PluginHost` (plugins load on first use)."""
        if self._plugin_host is None:
            from soong.core.plugins import PluginHost

            self._plugin_host = PluginHost(env=self.env, context=self)
        return self._plugin_host

    def _build(self, kind: str, name: str) -> Any:
        key = (kind, name)
        if key not in self._instances:
            registry = self.plugins.registry(kind)
            if name not in registry:
                known = ", ".join(sorted(registry)) or "none"
                raise NotFoundError(f"no {kind.replace('_', ' ')[:-1]} named '{name}' (known: {known})")
            if kind == "providers" and self.profile in LOCAL_ONLY_PROFILES:
                self._check_local_provider(name)
            obj = registry[name](self)
            methods = _GUARDED_METHODS.get(kind)
            if methods is not None:
                from soong.core.plugin_guard import guard, plugin_label

                who, builtin = plugin_label(self.plugins, kind, _LABELS[kind], name)
                guard(obj, methods(), who, builtin)
            self._instances[key] = obj
        return self._instances[key]

    def _check_local_provider(self, name: str) -> None:
        """In a local-only profile, refuse a provider whose plugin's API address (even a default) is not loopback."""
        config = self.config
        owner = self.plugins.owner("providers", name)
        for key in config.schema.keys:
            if key.api_endpoint and owner is not None and config.schema.owner(key.path) == owner:
                problem = _remote_endpoint(config, key, str(self.profile))
                if problem is not None:
                    raise problem

    def provider(self, name: str = "lambda") -> Any:
        """The provider object ``name``, built once per context."""
        return self._build("providers", name)

    def tunnel_backend(self, name: str | None = None) -> Any:
        """The configured (or named) tunnel backend, built once per context."""
        return self._build("tunnel_backends", name or self.config.get("tunnel.backend"))

    def models(self) -> dict[str, Any]:
        """The model catalog: registered models plus the config's ``custom_models``."""
        from soong.core.catalog import merged_catalog

        return merged_catalog(self.plugins.models(), self.config.get("custom_models"))
