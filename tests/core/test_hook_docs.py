"""Every hook spec is documented in docs/plugins.md with a runnable example, and tested."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

from soong.core import hookspecs
from soong.core.plugins import KINDS, PluginHost, PluginInfo

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "plugins.md").read_text()
HOOKS = hookspecs.all_hook_names()


def _example(hook: str) -> str:
    match = re.search(rf"^### {hook}\n(.*?)```python\n(.*?)```", DOC, re.S | re.M)
    assert match, f"{hook} has no section with a python example in docs/plugins.md"
    return match.group(2)


def test_hooks_exist():
    assert {"soong_register_providers", "soong_register_models", "soong_register_tunnel_backends",
            "soong_register_cost_sinks"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_docstring_with_params(hook):
    doc = getattr(hookspecs, hook).__doc__ or ""
    assert ":param" in doc or "no parameters" in doc.lower(), f"{hook} docstring lacks :param"


@pytest.mark.parametrize("hook", HOOKS)
def test_documented_example_runs_as_a_plugin(hook):
    module = types.ModuleType(f"example_{hook}")
    exec(compile(_example(hook), f"docs/plugins.md:{hook}", "exec"), module.__dict__)
    host = PluginHost(discover=False, env={})
    info = host.add_plugin(module, PluginInfo("acme"))  # the examples declare keys and secrets of plugin 'acme'
    kinds = [name for name, kind in KINDS.items() if kind.hook == hook]
    for kind in kinds:
        assert host.registry(kind), f"the {hook} example registered nothing"
    if hook == "soong_config_keys":
        assert host.config_keys(), "the soong_config_keys example declared nothing"
    if hook == "soong_secrets":
        assert host.secrets(), "the soong_secrets example declared nothing"
    assert info.status == "loaded", info.detail
    assert hook in info.hooks


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook):
    here = Path(__file__).name
    used = [p for p in (ROOT / "tests").rglob("test_*.py") if p.name != here and hook in p.read_text()]
    assert used, f"no test mentions {hook}"
