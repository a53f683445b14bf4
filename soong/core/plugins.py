"""The plugin host: discovers plugins, collects and checks what they register.

Plugins are modules (or objects) with ``@hookimpl`` functions, found through the
entry-point group ``soong``. Built-ins ship as entry points of the ``soong``
distribution itself and are loaded first, so a third-party plugin can override a
built-in on purpose (``register(obj, override=True)``) and ``soong plugins`` shows
it. A plugin that fails to import or register is recorded as failed and skipped;
the CLI keeps working.

Environment: ``SOONG_DISABLE_PLUGINS=a,b`` blocks plugins by name;
``SOONG_LOAD_PLUGINS=a,b`` loads only those (empty: none).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import sys
import time
from typing import Any, Callable, Iterable, Mapping

import pluggy

from soong.core import hookspecs
from soong.core.errors import PluginError

DIST_NAME = "soong"
ENTRY_POINT_GROUP = "soong"

#: Load order of the built-in plugins (all are entry points of the soong distribution).
BUILTIN_ORDER = ("lambda", "sglang", "plumbum-ssh", "direct", "ledger", "jsonl")

#: A plugin whose import or one registration hook takes longer than this is named as slow by ``soong plugins``.
SLOW_SECONDS = 0.2

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclasses.dataclass
class PluginInfo:
    """What ``soong plugins`` shows about one plugin."""

    name: str
    version: str = ""
    distribution: str = ""
    builtin: bool = False
    status: str = "loaded"  # loaded | overriding | failed | disabled
    detail: str = ""
    hooks: list[str] = dataclasses.field(default_factory=list)
    #: Seconds spent importing the plugin and in each of its registration hooks.
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Total seconds the plugin cost (import plus registration hooks)."""
        return sum(self.timings.values())

    def slow_parts(self, threshold: float = 0.0) -> list[str]:
        """``"soong_register_models 0.84 s"`` for each part that took longer than ``threshold``."""
        return [f"{part} {seconds:.2f} s" for part, seconds in self.timings.items() if seconds > threshold]


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of registrable object: its hook, how it is named and how it is checked."""

    hook: str
    label: str
    key: Callable[[Any], Any]
    check: Callable[[Any], str | None]


def _class_check(base_path: str) -> Callable[[Any], str | None]:
    def check(obj: Any) -> str | None:
        from importlib import import_module

        module, _, attr = base_path.rpartition(".")
        base = getattr(import_module(module), attr)
        if not inspect.isclass(obj) or not issubclass(obj, base):
            return f"{obj!r} is not a subclass of {base.__module__}.{base.__name__}"
        if inspect.isabstract(obj):
            missing = ", ".join(sorted(obj.__abstractmethods__))
            return f"{obj.__name__} does not implement {missing}"
        if not isinstance(obj.name, str) or not _NAME.match(obj.name):
            return f"{obj.__name__}.name {obj.name!r} is not a valid name"
        return None

    return check


def _model_check(obj: Any) -> str | None:
    from soong.core.types import ModelSpec

    if not isinstance(obj, ModelSpec):
        return f"{obj!r} is not a soong.core.types.ModelSpec"
    from soong.core.model_checks import problems

    found = problems(obj)
    return "; ".join(found) if found else None


KINDS: dict[str, Kind] = {
    "providers": Kind("soong_register_providers", "provider", lambda o: o.name, _class_check("soong.core.interfaces.Provider")),
    "models": Kind("soong_register_models", "model", lambda o: o.id, _model_check),
    "tunnel_backends": Kind(
        "soong_register_tunnel_backends", "tunnel backend", lambda o: o.name, _class_check("soong.core.interfaces.TunnelBackend")
    ),
    "cost_sinks": Kind("soong_register_cost_sinks", "cost sink", lambda o: o.name, _class_check("soong.core.interfaces.CostSink")),
}


def _env_list(env: Mapping[str, str], var: str) -> set[str] | None:
    if var not in env:
        return None
    return {part.strip() for part in env[var].split(",") if part.strip()}


def _warn(message: str) -> None:
    print(f"soong: warning: {message}", file=sys.stderr)


class PluginHost:
    """Loads plugins into a pluggy manager and keeps the registries they fill.

    :param env: environment for ``SOONG_DISABLE_PLUGINS`` / ``SOONG_LOAD_PLUGINS``.
    :param discover: load plugins from entry points (tests pass False and add their own).
    :param warn: where one-line warnings go (stderr by default).
    :param context: the :class:`~soong.core.context.Context` registration hooks receive
        (a Context given an existing host binds itself to it when it has none).
    """

    def __init__(self, *, env: Mapping[str, str] | None = None, discover: bool = True,
                 warn: Callable[[str], None] = _warn, context: Any = None) -> None:
        self.env = os.environ if env is None else env
        self.warn = warn
        self.context = context
        self._declared: dict[str, list[tuple[str, Any]]] = {}
        self.pm = pluggy.PluginManager("soong")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._registries: dict[str, dict[str, Any]] = {}
        self._owners: dict[str, dict[str, str]] = {}
        self._overrides: dict[tuple[str, str], tuple[PluginInfo, PluginInfo]] = {}
        if discover:
            self.load_entry_points()

    # -- loading ------------------------------------------------------------------------
    def _allowed(self, name: str) -> str | None:
        only = _env_list(self.env, "SOONG_LOAD_PLUGINS")
        if only is not None and name not in only:
            return "not in SOONG_LOAD_PLUGINS"
        if name in (_env_list(self.env, "SOONG_DISABLE_PLUGINS") or set()):
            return "disabled by SOONG_DISABLE_PLUGINS"
        return None

    def load_entry_points(self) -> None:
        """Load built-ins first, then every other ``soong`` entry point, by name."""
        from importlib.metadata import entry_points

        found = list(entry_points(group=ENTRY_POINT_GROUP))
        builtin = [ep for ep in found if ep.dist is not None and ep.dist.name == DIST_NAME]
        others = sorted((ep for ep in found if ep not in builtin), key=lambda ep: ep.name)
        order = {name: index for index, name in enumerate(BUILTIN_ORDER)}
        for ep in sorted(builtin, key=lambda ep: (order.get(ep.name, len(order)), ep.name)):
            self._load_one(ep.name, ep.load, DIST_NAME, ep.dist.version if ep.dist else "", builtin=True)
        for ep in others:
            dist = ep.dist.name if ep.dist is not None else ""
            version = ep.dist.version if ep.dist is not None else ""
            self._load_one(ep.name, ep.load, dist, version, builtin=False)

    def _load_one(self, name: str, loader: Callable[[], Any], dist: str, version: str, *, builtin: bool) -> None:
        if name in self.infos:
            other = self.infos[name]
            self._fail(PluginInfo(name, version, dist, builtin),
                       f"plugin name '{name}' is already used by {other.distribution or 'another plugin'}")
            return
        blocked = self._allowed(name)
        if blocked:
            self.infos[name] = PluginInfo(name, version, dist, builtin, status="disabled", detail=blocked)
            return
        info = PluginInfo(name, version, dist, builtin)
        started = time.perf_counter()
        try:
            plugin = loader()
        except Exception as exc:  # a broken plugin must never break the CLI
            self._fail(info, f"import failed: {type(exc).__name__}: {exc}")
            return
        finally:
            info.timings["import"] = time.perf_counter() - started
        self.add_plugin(plugin, info)

    def add_plugin(self, plugin: Any, info: PluginInfo | str) -> PluginInfo:
        """Register an already imported plugin object (tests use this directly)."""
        if isinstance(info, str):
            info = PluginInfo(info)
        blocked = self._allowed(info.name)
        if blocked:
            info.status, info.detail = "disabled", blocked
            self.infos[info.name] = info
            return info
        try:
            self.pm.register(plugin, name=info.name)
            self.pm.check_pending()  # an implementation of an unknown soong_ hook is an error
        except Exception as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._fail(info, f"registration failed: {type(exc).__name__}: {exc}")
            return info
        info.hooks = sorted({impl.function.__name__ for impl in self._impls_of(info.name)})
        self.infos[info.name] = info
        self._registries.clear()
        self._owners.clear()
        self._overrides.clear()
        self._declared.clear()
        return info

    def _impls_of(self, name: str) -> list[Any]:
        plugin = self.pm.get_plugin(name)
        if plugin is None:
            return []
        return [impl for caller in self.pm.get_hookcallers(plugin) or [] for impl in caller.get_hookimpls() if impl.plugin_name == name]

    def _fail(self, info: PluginInfo, reason: str) -> None:
        info.status, info.detail = "failed", reason
        self.infos.setdefault(info.name, info)
        if self.infos[info.name] is not info:
            self.infos[f"{info.name} ({info.distribution or '?'})"] = info
        self.warn(f"plugin '{info.name}' skipped: {reason} (see 'soong plugins')")

    # -- registries -----------------------------------------------------------------------
    def registry(self, kind: str) -> dict[str, Any]:
        """Everything registered for ``kind`` (providers, models, tunnel_backends, cost_sinks)."""
        if kind not in self._registries:
            self._collect(kind)
        return self._registries[kind]

    def _collect(self, kind_name: str) -> None:
        kind = KINDS[kind_name]
        registry: dict[str, Any] = {}
        owners: dict[str, str] = {}
        caller = getattr(self.pm.hook, kind.hook)
        # get_hookimpls() is in registration order, and built-ins were registered first.
        for impl in caller.get_hookimpls():
            info = self.infos.get(impl.plugin_name)
            if info is None or info.status == "failed":
                continue
            staged: list[tuple[str, Any, bool]] = []

            def register(obj: Any, *, override: bool = False, _staged: list = staged) -> None:
                problem = kind.check(obj)
                if problem:
                    raise PluginError(f"invalid {kind.label}: {problem}")
                _staged.append((kind.key(obj), obj, override))

            before = (dict(registry), dict(owners))
            started = time.perf_counter()
            try:
                try:
                    self._call(impl, register)
                finally:
                    info.timings[kind.hook] = time.perf_counter() - started
                for name, obj, override in staged:
                    self._place(kind, registry, owners, name, obj, override, info)
            except Exception as exc:
                if staged:  # undo this plugin's entries; a built-in entry it had replaced comes back
                    registry.clear()
                    registry.update(before[0])
                    owners.clear()
                    owners.update(before[1])
                    for name, _obj, _override in staged:
                        self._overrides.pop((kind.label, name), None)
                self._fail(info, f"{kind.hook} failed: {exc}")
        self._registries[kind_name] = registry
        self._owners[kind_name] = owners

    def _call(self, impl: Any, register: Callable[..., None]) -> None:
        """Call a registration hook implementation with the arguments it names (``register``, ``context``)."""
        offered = {"register": register, "context": self.context}
        impl.function(**{name: offered[name] for name in impl.argnames if name in offered})

    def declared(self, hook: str, check: Callable[[PluginInfo, Any, list[tuple[str, Any]]], Any]) -> list[tuple[str, Any]]:
        """``(plugin name, object)`` for everything the plugins register through declaration hook ``hook``.

        Each ``register(obj)`` goes through ``check(info, obj, accepted)``, which returns
        the object or raises to refuse it (``accepted``: what earlier plugins and this one
        declared so far). A plugin whose hook raises, or registers something refused, is
        failed: it declares nothing and ``soong plugins`` says why. Collected once.
        """
        if hook in self._declared:
            return self._declared[hook]
        accepted: list[tuple[str, Any]] = []
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            info = self.infos.get(impl.plugin_name)
            if info is None or info.status == "failed":
                continue
            mine: list[tuple[str, Any]] = []

            def register(obj: Any, _info: PluginInfo = info, _mine: list = mine) -> None:
                _mine.append((_info.name, check(_info, obj, accepted + _mine)))

            started = time.perf_counter()
            try:
                self._call(impl, register)
            except Exception as exc:  # a broken plugin's declarations are unknown, never a crash
                self._fail(info, f"{hook} failed: {exc}")
                continue
            finally:
                info.timings[hook] = time.perf_counter() - started
            accepted.extend(mine)
        self._declared[hook] = accepted
        return accepted

    def _place(self, kind: Kind, registry: dict, owners: dict, name: str, obj: Any, override: bool, info: PluginInfo) -> None:
        if name in owners and owners[name] != info.name:
            holder = self.infos[owners[name]]
            if not (override and holder.builtin and not info.builtin):
                raise PluginError(
                    f"{kind.label} '{name}' from plugin '{info.name}' clashes with the one from plugin "
                    f"'{holder.name}'" + ("" if holder.builtin is False else " (use register(obj, override=True) to replace a built-in)")
                )
            info.status = "overriding"
            self._overrides[(kind.label, name)] = (info, holder)
            note = f"overrides {kind.label} '{name}' of '{holder.name}'"
            info.detail = f"{info.detail}; {note}" if info.detail else note
        elif name in owners:
            raise PluginError(f"{kind.label} '{name}' registered twice by plugin '{info.name}'")
        registry[name] = obj
        owners[name] = info.name

    def owner(self, kind: str, name: str) -> str | None:
        """The plugin that registered ``name`` in ``kind``."""
        self.registry(kind)
        return self._owners[kind].get(name)

    def override_note(self, kind: str, name: str) -> str | None:
        """One line when ``name`` of ``kind`` comes from a plugin that replaced a built-in's entry, else None."""
        self.registry(kind)
        found = self._overrides.get((KINDS[kind].label, name))
        if found is None:
            return None
        plugin, builtin = found
        package = f"{plugin.distribution} {plugin.version}".strip() or plugin.name
        return (f"{KINDS[kind].label} '{name}' comes from plugin '{plugin.name}' ({package}), "
                f"which replaces the built-in one of '{builtin.name}'")

    def collect_all(self) -> None:
        """Run every registration and declaration hook (so ``soong plugins`` sees every failure)."""
        self.config_keys()
        self.secrets()
        for kind in KINDS:
            self.registry(kind)

    def config_keys(self) -> list[tuple[str, Any]]:
        """``(plugin, Key)`` for every config key the plugins declare (``soong_config_keys``)."""
        from soong.core.declarations import check_key

        return self.declared("soong_config_keys", lambda info, key, accepted: check_key(
            info, key, accepted, self.sections_of))

    def secrets(self) -> list[tuple[str, Any]]:
        """``(plugin, Secret)`` for every secret the plugins declare (``soong_secrets``)."""
        from soong.core.declarations import check_secret

        return self.declared("soong_secrets", lambda info, secret, accepted: check_secret(
            info, secret, accepted, self.sections_of))

    def sections_of(self, plugin: str) -> list[str]:
        """The config sections ``plugin`` owns: its own name's, then those of the providers, tunnel backends
        and cost sinks it registers (those registries are only collected when this is asked)."""
        from soong.core.declarations import plugin_section

        found = [plugin_section(plugin)]
        for kind in ("providers", "tunnel_backends", "cost_sinks"):
            self.registry(kind)
            found += [plugin_section(name) for name, owner in self._owners[kind].items() if owner == plugin]
        return list(dict.fromkeys(found))

    def plugin_infos(self) -> list[PluginInfo]:
        """Every plugin seen, built-ins first."""
        return sorted(self.infos.values(), key=lambda i: (not i.builtin, i.name))

    # -- typed facade ---------------------------------------------------------------------
    def providers(self) -> dict[str, type]:
        """Provider classes by name."""
        return self.registry("providers")

    def models(self) -> dict[str, Any]:
        """ModelSpec entries by id."""
        return self.registry("models")

    def tunnel_backends(self) -> dict[str, type]:
        """Tunnel backend classes by name."""
        return self.registry("tunnel_backends")

    def cost_sinks(self) -> dict[str, type]:
        """Cost sink classes by name."""
        return self.registry("cost_sinks")

    @property
    def hook(self) -> Any:
        """pluggy's hook relay, for hooks that are not registration hooks."""
        return self.pm.hook


def hook_names_implemented(plugins: Iterable[PluginInfo]) -> set[str]:
    """Every hook name implemented by at least one of ``plugins``."""
    return {hook for info in plugins for hook in info.hooks}
