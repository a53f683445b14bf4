"""The daemon stands alone: it imports none of the CLI and only its pinned dependencies."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "soong_daemon"
ALLOWED_THIRD_PARTY = {"falcon", "gunicorn", "yaml", "requests"}


def test_no_module_imports_the_cli_or_other_dependencies():
    stdlib = set(sys.stdlib_module_names)
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in stdlib or top in ALLOWED_THIRD_PARTY or top == "soong_daemon", f"{path.name}: {name}"


def test_importing_every_module_loads_nothing_of_the_cli():
    modules = sorted(f"soong_daemon.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__main__")
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted({n.split('.')[0] for n in sys.modules}))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for forbidden in ("'soong'", "'cliff'", "'pluggy'", "'keyring'", "'plumbum'", "'tenacity'"):
        assert forbidden not in loaded


def test_requirements_pin_every_direct_dependency():
    lines = [line for line in (PACKAGE / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
    pinned = {line.split("==")[0].lower() for line in lines if "==" in line}
    assert len(pinned) == len(lines)
    assert {"falcon", "gunicorn", "pyyaml", "requests"} <= pinned
