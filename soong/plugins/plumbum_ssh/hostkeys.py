"""soong's own known_hosts file: reading and forgetting the key of one instance."""

from __future__ import annotations

from pathlib import Path

from soong.core.atomic import write_private
from soong.plugins.plumbum_ssh.options import host_alias


def _hosts_of(line: str) -> list[str]:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return []
    fields = stripped.split()
    if fields[0].startswith("@"):  # @cert-authority / @revoked marker
        fields = fields[1:]
    return fields[0].split(",") if fields else []


def known_keys(known_hosts: Path, instance_id: str) -> list[str]:
    """The known_hosts lines that hold the host key of an instance."""
    alias = host_alias(instance_id)
    try:
        lines = Path(known_hosts).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [line for line in lines if alias in _hosts_of(line)]


def forget_host_key(known_hosts: Path, instance_id: str) -> int:
    """Remove the host key of an instance from soong's known_hosts; return how many lines went.

    Called when an instance is terminated: providers reuse addresses, and the
    next instance must be trusted on its own first use.
    """
    alias = host_alias(instance_id)
    path = Path(known_hosts)
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return 0
    kept = [line for line in lines if alias not in _hosts_of(line)]
    removed = len(lines) - len(kept)
    if removed:
        write_private(path, "".join(kept))
    return removed
