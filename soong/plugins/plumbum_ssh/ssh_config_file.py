"""The ssh_config soong writes (a Host per running instance) and its Include line in ~/.ssh/config."""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any, Iterable

from soong.core.atomic import write_private
from soong.core.paths import private_dir
from soong.plugins.plumbum_ssh.options import SshSettings, _ssh_path

HEADER = ("# Written by 'soong ssh-config': one Host per running instance. It is rewritten on every run;\n"
          "# edit soong's config (ssh.user, ssh.port, ssh.key_path) instead of this file.\n")
INCLUDE_COMMENT = "# Hosts of running soong instances (added by 'soong ssh-config')"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _id(item: Any) -> str:
    """The instance id of an Instance or a TunnelTarget."""
    return getattr(item, "instance_id", None) or item.id


def _address(item: Any) -> str | None:
    """The address of an Instance (``ip``) or a TunnelTarget (``host``)."""
    return getattr(item, "host", None) or getattr(item, "ip", None)


def host_names(items: Iterable[Any]) -> list[tuple[str, Any]]:
    """``(alias, item)`` pairs for instances or tunnel targets: the name made safe for a Host line, unique, else the id."""
    used: set[str] = set()
    out = []
    for item in items:
        alias = _UNSAFE.sub("-", item.name or "").strip("-.") or _id(item)
        if alias in used:
            alias = f"{alias}-{_id(item)}"
        used.add(alias)
        out.append((alias, item))
    return out


def render(items: Iterable[Any], settings: SshSettings) -> str:
    """The ssh_config text for instances or tunnel targets (those without an address are left out).

    A target's own login user (the provider's) is used unless ``ssh.user`` is set.
    """
    blocks = [HEADER]
    for alias, item in host_names(i for i in items if _address(i)):
        where = f" ({item.instance_type}, {item.region})" if hasattr(item, "instance_type") else ""
        user = settings.user or getattr(item, "user", None) or ""
        lines = [f"Host {alias}", f"    # instance {_id(item)}{where}",
                 f"    HostName {_address(item)}", f"    User {user}", f"    Port {settings.port}"]
        lines += [f"    {option} {value}" for option, value in settings.login_options()]
        lines += [f"    {option} {value}" for option, value in settings.host_key_options(_id(item))]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def include_line(target: Path) -> str:
    """The ``Include`` line for ``target`` (absolute, quoted if it has spaces)."""
    return f"Include {_ssh_path(Path(target).absolute())}"


def _includes(text: str, target: Path) -> bool:
    wanted = str(Path(target).absolute())
    for line in text.split("\n"):  # ssh reads lines split on newlines only
        parts = line.strip(" \t\r").split(None, 1)
        if len(parts) == 2 and parts[0].lower() == "include":
            if parts[1].strip().strip('"').replace("%%", "%") == wanted:
                return True
    return False


def ensure_include(user_config: Path, target: Path) -> tuple[bool, Path | None]:
    """Put one ``Include target`` line at the top of ``user_config`` (~/.ssh/config), once.

    An ``Include`` only applies outside Host blocks, so it goes first. The old file
    is copied to a backup beside it before the change; a symlinked config is
    edited where it points. Returns ``(added, backup path or None)``.
    """
    path = Path(user_config)
    if path.is_symlink():
        path = path.resolve()
    try:
        old = path.read_text(encoding="utf-8")
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        old, mode = None, 0o600
    if old is not None and _includes(old, target):
        return False, None
    private_dir(path.parent)
    backup = None
    if old is not None:
        backup = path.with_name(path.name + ".soong-backup")
        number = 1
        while backup.exists():
            backup = path.with_name(f"{path.name}.soong-backup.{number}")
            number += 1
        shutil.copy2(path, backup)
        os.chmod(backup, mode & 0o600 or 0o600)
    new = f"{INCLUDE_COMMENT}\n{include_line(target)}\n\n{old or ''}"
    write_private(path, new, mode=mode & ~0o022)
    return True, backup
