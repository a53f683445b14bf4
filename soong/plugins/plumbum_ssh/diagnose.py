"""Turning ssh's failure output into one clear soong error.

The cases users hit: a changed host key (refused, with how to proceed), a login
refused (which key was offered, which keys the account has and which one the
instance was launched with), a local port already taken, an unreachable host.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import subprocess
from pathlib import Path
from typing import Any

from soong.core.errors import ConfigError, UnreachableError
from soong.core.local_ports import PortInUseError
from soong.plugins.plumbum_ssh.options import SshSettings, host_alias

_BIND_FAILED = re.compile(r"bind \[?[^\]\s]*\]?:(\d+): Address already in use|cannot listen to port: (\d+)")


class HostKeyChangedError(UnreachableError):
    """The instance presented a host key different from the one soong trusted before."""


class SshLoginError(UnreachableError):
    """The instance refused the login (wrong key or user)."""


def public_key_fingerprint(public_line: str) -> str | None:
    """``SHA256:...`` fingerprint of an OpenSSH public key line, or None if it does not parse."""
    fields = public_line.split()
    if len(fields) < 2:
        return None
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        return None
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def local_key_fingerprint(key_path: Path) -> str | None:
    """Fingerprint of a private key: from ``<key>.pub``, or derived with ``ssh-keygen -y`` (never prompting)."""
    pub = Path(str(key_path) + ".pub")
    try:
        return public_key_fingerprint(pub.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        pass
    try:
        out = subprocess.run(["ssh-keygen", "-y", "-P", "", "-f", str(key_path)], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return public_key_fingerprint(out.stdout) if out.returncode == 0 else None


def key_needs_passphrase(key_path: Path) -> bool:
    """Whether a private key cannot be read without a passphrase (ssh would ask for it)."""
    try:
        out = subprocess.run(["ssh-keygen", "-y", "-P", "", "-f", str(key_path)], capture_output=True,
                             stdin=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode != 0 and Path(key_path).is_file()


def check_key_file(settings: SshSettings) -> None:
    """Raise ConfigError when the configured private key does not exist."""
    if not settings.key_path.is_file():
        raise ConfigError(f"SSH key {settings.key_path} does not exist (set ssh.key_path to the private key "
                          "matching an SSH key of your account)")


def describe_keys(context: Any, settings: SshSettings, instance: Any = None) -> str:
    """Which key soong offered and which keys the account has (best effort, never raises)."""
    ours = local_key_fingerprint(settings.key_path)
    text = f"key used: {settings.key_path} ({ours or 'fingerprint unknown'})"
    try:
        account = context.provider().list_ssh_keys()
    except Exception as exc:  # the diagnosis must not hide the original failure
        return f"{text}; could not list the account's keys: {exc}"
    launched = set(getattr(instance, "ssh_key_names", ()) or ())
    parts = []
    for key in account:
        print_ = public_key_fingerprint(key.public_key) or "?"
        marks = [m for m, on in (("matches", print_ == ours), ("launched with", key.name in launched)) if on]
        parts.append(f"{key.name} ({print_}{', ' + ', '.join(marks) if marks else ''})")
    text += f"; the account has: {', '.join(parts) if parts else 'no keys'}"
    if ours and not any(public_key_fingerprint(k.public_key) == ours for k in account):
        text += "; the key used is not one of them"
    return text


def bind_failure_port(output: str) -> int | None:
    """The local port ssh could not listen on, if the output says so."""
    match = _BIND_FAILED.search(output)
    if not match:
        return None
    return int(match.group(1) or match.group(2))


def classify(output: str) -> str:
    """The kind of ssh failure: host_key, login, port_in_use, unreachable or other."""
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in output or "Host key verification failed" in output:
        return "host_key"
    if "Permission denied" in output or "Too many authentication failures" in output:
        return "login"
    if bind_failure_port(output) is not None or "Could not request local forwarding" in output:
        return "port_in_use"
    if any(s in output for s in ("Connection refused", "timed out", "No route to host", "Could not resolve",
                                 "Network is unreachable", "Connection closed", "Connection reset")):
        return "unreachable"
    return "other"


def last_line(output: str) -> str:
    """The last non-empty line of ssh's output (its own summary of the failure)."""
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("@")]
    return lines[-1] if lines else "no output"


def failure_error(context: Any, settings: SshSettings, output: str, *, instance_id: str, host: str,
                  instance: Any = None, port_names: dict[int, str] | None = None) -> Exception:
    """The soong error for a failed ssh run, from its output."""
    kind = classify(output)
    where = f"{settings.user}@{host}:{settings.port}"
    if kind == "host_key":
        return HostKeyChangedError(
            f"WARNING: the SSH host key of instance {instance_id} ({host}) is not the one soong trusted before; "
            "refusing to connect (the connection may be intercepted)",
            hint=f"if you know why the key changed, forget it with: ssh-keygen -R {host_alias(instance_id)} "
                 f"-f {settings.known_hosts}")
    if kind == "login":
        if instance is None:
            try:
                instance = context.provider().get_instance(instance_id)
            except Exception:  # only to say which key it was launched with; never hide the failure
                instance = None
        hint = "set ssh.key_path to the private key of a key the instance was launched with"
        if key_needs_passphrase(settings.key_path):
            hint = f"the key needs a passphrase, which soong never asks for: load it with 'ssh-add {settings.key_path}'"
        return SshLoginError(f"{where} refused the login: {describe_keys(context, settings, instance)}", hint=hint)
    if kind == "port_in_use":
        port = bind_failure_port(output)
        if port is not None:
            return PortInUseError(port, (port_names or {}).get(port))
    return UnreachableError(f"ssh to {where} failed: {last_line(output)}")
