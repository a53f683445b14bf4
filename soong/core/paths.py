"""Where soong keeps its files, following the XDG base directory rules.

=========  ==================================  =====================================
what       default                             override
=========  ==================================  =====================================
config     ``$XDG_CONFIG_HOME/soong``          ``$SOONG_CONFIG_DIR``
state      ``$XDG_STATE_HOME/soong``           (tunnels, known_hosts, queues)
data       ``$XDG_DATA_HOME/soong``            (the ledger)
cache      ``$XDG_CACHE_HOME/soong``           (instance-type cache)
=========  ==================================  =====================================

A profile other than the default keeps all four under
``$XDG_STATE_HOME/soong/<profile>/`` so it never touches the real setup.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Mapping

LEGACY_CONFIG = Path("gpu-dashboard") / "config.yaml"


def _xdg(env: Mapping[str, str], var: str, fallback: str) -> Path:
    value = env.get(var)
    if value and os.path.isabs(value):
        return Path(value)
    return Path(env.get("HOME") or os.path.expanduser("~")) / fallback


@dataclasses.dataclass(frozen=True)
class Paths:
    """The directories of one profile."""

    config_dir: Path
    state_dir: Path
    data_dir: Path
    cache_dir: Path
    legacy_config_file: Path | None = None

    @property
    def config_file(self) -> Path:
        """The YAML configuration file."""
        return self.config_dir / "config.yaml"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, profile: str | None = None) -> "Paths":
        """Resolve the directories for ``profile`` (None: the default one) from ``env``."""
        env = os.environ if env is None else env
        config_home = _xdg(env, "XDG_CONFIG_HOME", ".config")
        state_root = _xdg(env, "XDG_STATE_HOME", ".local/state") / "soong"
        if profile and profile != "default":
            base = state_root / profile
            return cls(base / "config", base / "state", base / "data", base / "cache")
        config_dir = Path(env["SOONG_CONFIG_DIR"]) if env.get("SOONG_CONFIG_DIR") else config_home / "soong"
        return cls(
            config_dir=config_dir,
            state_dir=state_root,
            data_dir=_xdg(env, "XDG_DATA_HOME", ".local/share") / "soong",
            cache_dir=_xdg(env, "XDG_CACHE_HOME", ".cache") / "soong",
            legacy_config_file=config_home / LEGACY_CONFIG,
        )


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 from the start; return it.

    Each missing folder is made with ``mkdir(mode=0o700)`` (the umask can only take
    bits away), not by changing the process-wide umask, which would make files that
    other threads create meanwhile unreadable to anyone else.
    """
    missing = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
    return path
