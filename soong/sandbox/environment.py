"""The environment of every process the sandbox starts: no secrets, a marker, no proxy for loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from soong.sandbox.layout import MARKER_ENV

#: Never passed on: secrets travel in 0600 files (or, for the emulator, in its own variable only).
SECRET_ENV = ("LAMBDA_API_KEY", "SOONG_DAEMON_TOKEN", "HF_TOKEN", "SOONG_EMULATOR_API_KEY", "SOONG_EMULATOR_ADMIN_TOKEN")
LOOPBACK_NO_PROXY = ("127.0.0.0/8", "localhost")


def child_env(env: Mapping[str, str], root: Path) -> dict[str, str]:
    """``env`` without secrets, marked with the sandbox root, with loopback excluded from any proxy."""
    out = {k: v for k, v in env.items() if k not in SECRET_ENV and not k.startswith("SOONG_SECRET_")}
    out[MARKER_ENV] = str(root)
    for name in ("NO_PROXY", "no_proxy"):
        parts = [p for p in out.get(name, "").split(",") if p.strip()]
        out[name] = ",".join(parts + [p for p in LOOPBACK_NO_PROXY if p not in parts])
    return out
