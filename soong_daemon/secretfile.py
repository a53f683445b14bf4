"""Reading the daemon's two secrets (API key, bearer token) from their 0600 files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from soong_daemon.config import ConfigError

MAX_SECRET_BYTES = 4096


def read_secret(path: Path, key: str) -> str:
    """Return the secret stored in ``path`` (the config key ``key`` names it in errors).

    The file must be a regular file no one but its owner can read or write, and
    hold one non-empty line. The value itself never appears in a message.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"config key '{key}': cannot open {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"config key '{key}': {path} is not a regular file")
        if info.st_mode & 0o077:
            raise ConfigError(f"config key '{key}': {path} is readable by others (run chmod 600 {path})")
        raw = os.read(fd, MAX_SECRET_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_SECRET_BYTES:
        raise ConfigError(f"config key '{key}': {path} is too large for a secret")
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"config key '{key}': {path} is not UTF-8 text") from None
    if not value or "\n" in value or any(ch.isspace() for ch in value):
        raise ConfigError(f"config key '{key}': {path} must hold exactly one secret with no spaces")
    return value
