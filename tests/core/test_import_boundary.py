"""Core, the commands and the daemon import no built-in plugin: everything a plugin offers comes through hooks.

Every import statement counts, at any depth (inside functions and ``if TYPE_CHECKING``
blocks too), and so do ``importlib.import_module("...")`` / ``__import__("...")``
calls with a literal name. There is no list of exceptions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The packages that must not import ``soong.plugins`` (nor anything under it).
GUARDED = ("soong/core", "soong/commands", "soong_daemon")
FORBIDDEN = "soong.plugins"


def _imported_names(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every module ``tree`` imports (relative imports resolved against ``module``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: -node.level]
                base = ".".join(parts + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


def _violations(paths: list[Path]) -> list[str]:
    out = []
    for path in paths:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in _imported_names(tree, module):
            if name == FORBIDDEN or name.startswith(FORBIDDEN + "."):
                out.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return out


def _sources() -> list[Path]:
    files = [p for folder in GUARDED for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 60, "the guarded packages were not found"
    return files


def test_core_commands_and_daemon_import_no_plugin():
    assert _violations(_sources()) == []


def test_every_spelling_of_a_plugin_import_is_seen():
    """The walker sees every spelling, so the test above can fail."""
    samples = {
        "top.py": "import soong.plugins.lambda_cloud.provider\n",
        "local.py": "def f():\n    from soong.plugins.lambda_cloud.provider import new_token\n",
        "package.py": "from soong import plugins\n",
        "relative.py": "from ..plugins import plumbum_ssh\n",
        "typing.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from soong.plugins import sglang\n",
        "dynamic.py": "import importlib\nimportlib.import_module('soong.plugins.jsonl_sink')\n",
    }
    for name, source in samples.items():
        names = [n for _line, n in _imported_names(ast.parse(source), "soong.core.sample")]
        assert any(n == FORBIDDEN or n.startswith(FORBIDDEN + ".") for n in names), (name, names)
    assert _imported_names(ast.parse("from soong.core import plugins\n"), "soong.core.x")[0][1] == "soong.core"


@pytest.mark.parametrize("folder", GUARDED)
def test_each_guarded_folder_exists(folder):
    assert (ROOT / folder).is_dir()
