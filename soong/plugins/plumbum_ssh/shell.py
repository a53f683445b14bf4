"""A shell on an instance over OpenSSH (``soong ssh``) and the client config ``soong ssh-config`` writes.

The ``plumbum-ssh`` backend's optional :class:`~soong.core.interfaces.TunnelBackend`
methods (``shell_argv``, ``diagnose``, ``write_ssh_config``) are these functions:
the same settings, host-key policy and failure diagnosis as its tunnels.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Sequence

from soong.core.errors import UnreachableError
from soong.core.types import TunnelTarget
from soong.plugins.plumbum_ssh import diagnose
from soong.plugins.plumbum_ssh.options import SshSettings

#: Seconds one diagnosing connection may take.
PROBE_SECONDS = 60


def _ssh() -> str:
    from soong.plugins.plumbum_ssh.backend import ssh_command

    return str(ssh_command().executable)


def shell_argv(context: Any, target: TunnelTarget, command: Sequence[str] = (), *, tty: bool = False) -> list[str]:
    """``ssh ... HOST [COMMAND]``: interactive (prompts allowed) without a command, batch mode with one."""
    settings = SshSettings.from_context(context, user=target.user)
    diagnose.check_key_file(settings)
    ssh = _ssh()
    if not command:
        return [ssh, *settings.arguments(target.instance_id, batch=False), settings.destination(target.host)]
    return [ssh, *settings.arguments(target.instance_id), *(["-t"] if tty else []), settings.destination(target.host),
            *command]


def probe(context: Any, target: TunnelTarget) -> Exception | None:
    """Connect once without a command; None if that works (or only a key passphrase is missing), else the explained failure."""
    settings = SshSettings.from_context(context, user=target.user)
    argv = [_ssh(), *settings.arguments(target.instance_id), "-T", settings.destination(target.host), "true"]
    try:
        out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=PROBE_SECONDS)
    except subprocess.TimeoutExpired:
        return UnreachableError(f"ssh to {target.host} did not finish within {PROBE_SECONDS}s")
    if out.returncode == 0:
        return None
    error = diagnose.failure_error(context, settings, out.stderr, instance_id=target.instance_id, host=target.host)
    if isinstance(error, diagnose.SshLoginError) and diagnose.key_needs_passphrase(settings.key_path):
        return None  # a passphrase-protected key without an agent: let ssh ask for the passphrase
    return error


def write_config(context: Any, targets: Sequence[TunnelTarget], path: Path, *, include_from: Path | None) -> list[str]:
    """Write the client config for ``targets`` to ``path`` (and include it from ``include_from``); what was done."""
    from soong.core.atomic import write_private
    from soong.plugins.plumbum_ssh import ssh_config_file

    settings = SshSettings.from_context(context)
    path = Path(path)
    write_private(path, ssh_config_file.render(targets, settings))
    hosts = ssh_config_file.host_names(t for t in targets if t.host)
    lines = [f"wrote {path} ({len(hosts)} host{'s' if len(hosts) != 1 else ''})"]
    lines += [f"  {alias}: {target.instance_id} at {target.host}" for alias, target in hosts]
    if not settings.key_path.is_file():
        lines.append(f"warning: SSH key {settings.key_path} does not exist (config ssh.key_path)")
    if include_from is not None:
        user_config = Path(include_from)
        added, backup = ssh_config_file.ensure_include(user_config, path)
        if added:
            note = f" (backup: {backup})" if backup else ""
            lines.append(f"added an Include line to {user_config}{note}")
        else:
            lines.append(f"{user_config} already includes it")
    return lines
