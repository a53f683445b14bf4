"""Fake installed distributions for tests: a dist-info folder on a PYTHONPATH entry.

``importlib.metadata`` finds them exactly as it finds installed packages, so the real
``soong`` executable discovers their entry points (plugins, commands).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence


def add_distribution(site: Path, name: str, version: str, entry_points: Mapping[str, Sequence[str]],
                     modules: Mapping[str, str] | None = None) -> Path:
    """Write ``<site>/<name>-<version>.dist-info`` with ``entry_points`` (group -> ``"name = target"`` lines)
    and the source of each module in ``modules`` (module name -> code) beside it; returns ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(source)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{line}\n" for line in lines) for group, lines in entry_points.items()))
    return site
