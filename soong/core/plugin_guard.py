"""Errors that name the plugin: a provider or tunnel backend that raises or answers wrongly says who it is.

:func:`guard` wraps each interface method of a plugin object in place (instance
attributes shadow the class's methods, so ``isinstance`` and the object's other
attributes are untouched):

* an unexpected exception becomes a :class:`~soong.core.errors.PluginError`
  reading ``plugin soong-acme (provider acme): ValueError: ...`` (exit 1, no
  traceback without ``--debug``);
* a :class:`~soong.core.errors.SoongError` keeps its class and exit code (a
  capacity error is still a capacity error) and gains the same prefix when the
  plugin is not a built-in;
* an answer of the wrong type (``list_instances`` returning dicts, ``launch``
  returning None) is a PluginError naming the method and what it returned,
  raised before any caller can misread it.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from soong.core.errors import PluginError, SoongError

#: What each provider method must return: a class, ``(list, class)`` for a list of them, or a tuple of choices.
PROVIDER_RETURNS: dict[str, Any] = {
    "list_instance_types": (list, "InstanceType"),
    "list_instances": (list, "Instance"),
    "get_instance": "Instance",
    "launch": "Instance",
    "terminate": (list, "Instance"),
    "list_ssh_keys": (list, "SshKey"),
    "list_file_systems": (list, "FileSystem"),
    "image_family": ("ImageFamily", None),
    "machine_images": (list, "MachineImage"),
    "new_token": "str",
    "instance_name": "str",
    "launch_preview": "tuple",
    "ssh_user": ("str", None),
    "tunnel_target": "TunnelTarget",
    "default_region": ("str", None),
    "default_filesystem": ("str", None),
    "default_ssh_key_name": ("str", None),
    "self_termination": ("SelfTermination", None),
}
#: Tunnel backend methods: only their exceptions are named (their answers are checked where they are used),
#: except ``run``'s, which must be a RemoteResult.
TUNNEL_METHODS: dict[str, Any] = {name: None for name in ("open", "start", "list", "close", "check", "forget",
                                                           "shell_argv", "diagnose", "ssh_config")}
TUNNEL_METHODS["run"] = "RemoteResult"


def _class(name: str) -> type:
    import builtins

    from soong.core import images, types

    return getattr(types, name, None) or getattr(images, name, None) or getattr(builtins, name)


def _wrong_answer(spec: Any, value: Any) -> str | None:
    """Why ``value`` does not match ``spec`` (None when it does)."""
    if spec is None:
        return None
    if isinstance(spec, tuple) and spec and spec[0] is list:
        if not isinstance(value, list):
            return f"returned {type(value).__name__}, not a list of {spec[1]}"
        wanted = _class(spec[1])
        bad = next((item for item in value if not isinstance(item, wanted)), None)
        return None if bad is None else f"returned a list holding {type(bad).__name__}, not {spec[1]}"
    choices = spec if isinstance(spec, tuple) else (spec,)
    for choice in choices:
        if (choice is None and value is None) or (isinstance(choice, str) and isinstance(value, _class(choice))):
            return None
    wanted = " or ".join("None" if c is None else c for c in choices)
    return f"returned {type(value).__name__}, not {wanted}"


def plugin_label(host: Any, kind: str, label: str, name: str) -> tuple[str, bool]:
    """``("plugin soong-acme (provider acme)", builtin)`` for the object registered as ``name``."""
    owner = host.owner(kind, name) if host is not None else None
    info = host.infos.get(owner) if owner is not None else None
    package = (info.distribution or info.name) if info is not None else (owner or "?")
    return f"plugin {package} ({label} {name})", bool(info is not None and info.builtin)


def _guarded(method: Callable, method_name: str, spec: Any, who: str, builtin: bool) -> Callable:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            value = method(*args, **kwargs)
        except SoongError as exc:
            if not builtin and not exc.message.startswith(who):
                exc.message = f"{who}: {exc.message}"
                exc.args = (exc.message,) + exc.args[1:]
            raise
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except Exception as exc:
            raise PluginError(f"{who}: {method_name} failed: {type(exc).__name__}: {exc}") from exc
        problem = _wrong_answer(spec, value)
        if problem:
            raise PluginError(f"{who}: {method_name} {problem}")
        return value

    call.__soong_guarded__ = True  # type: ignore[attr-defined]
    return call


def guard(obj: Any, methods: dict[str, Any], who: str, builtin: bool) -> Any:
    """Wrap ``obj``'s ``methods`` in place (see the module docstring); returns ``obj``."""
    for method_name, spec in methods.items():
        method = getattr(obj, method_name, None)
        if method is None or not callable(method) or getattr(method, "__soong_guarded__", False):
            continue
        if method_name == "open":
            continue  # a context manager: its exceptions surface in the caller's with-block, unwrapped
        setattr(obj, method_name, _guarded(method, method_name, spec, who, builtin))
    return obj
