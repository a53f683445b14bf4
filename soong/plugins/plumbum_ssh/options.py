"""The SSH settings soong uses for every connection to an instance, and the options they become.

Host keys are trusted on first use into soong's own known_hosts file, under an
alias per instance (``soong-<instance id>``): a different key for the same
instance is refused, and a reused address never inherits an old instance's key.
``StrictHostKeyChecking=no`` is never used.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from soong.core.paths import private_dir
from soong.core.tunnel_state import check_instance_id

#: Seconds between keep-alive probes, and how many may go unanswered before ssh gives up.
SERVER_ALIVE_INTERVAL = 15
SERVER_ALIVE_COUNT_MAX = 3
#: Seconds ssh waits for the TCP connection and the handshake.
CONNECT_TIMEOUT = 15


def host_alias(instance_id: str) -> str:
    """The name an instance's host key is stored under in soong's known_hosts."""
    return f"soong-{check_instance_id(instance_id)}"


def known_hosts_path(context: Any) -> Path:
    """soong's own known_hosts file (in the profile's state directory)."""
    return Path(context.paths.state_dir) / "known_hosts"


def _ssh_path(path: Path | str) -> str:
    """A path as an ssh option value: ``%`` escaped, double-quoted if it has spaces."""
    text = str(path).replace("%", "%%")
    return f'"{text}"' if any(ch.isspace() for ch in text) else text


@dataclasses.dataclass(frozen=True)
class SshSettings:
    """Who logs in where with which key (config keys ``ssh.user``, ``ssh.port``, ``ssh.key_path``).

    The user is the target's (the provider's login user, which ``ssh.user`` overrides);
    empty when nobody says, and then :meth:`arguments` refuses with a ConfigError.
    """

    user: str
    port: int
    key_path: Path
    known_hosts: Path

    @classmethod
    def from_context(cls, context: Any, user: str | None = None) -> "SshSettings":
        """The settings of a :class:`~soong.core.context.Context` (``user``: the target's login user).

        The known_hosts folder is created (0700) here: ssh cannot create it, and
        without it a first-use key would be accepted but never remembered.
        """
        config = context.config
        home = context.env.get("HOME") or os.path.expanduser("~")
        key = str(config.get("ssh.key_path"))
        if key == "~" or key.startswith("~/"):
            key = home + key[1:]
        known_hosts = known_hosts_path(context)
        private_dir(known_hosts.parent)
        try:
            os.close(os.open(known_hosts, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        return cls(user=str(config.get("ssh.user") or user or ""), port=int(config.get("ssh.port")),
                   key_path=Path(key), known_hosts=known_hosts)

    def host_key_options(self, instance_id: str) -> list[tuple[str, str]]:
        """The host-key policy as ``(option, value)`` pairs (shared with ``soong ssh-config``)."""
        return [
            ("HostKeyAlias", host_alias(instance_id)),
            ("StrictHostKeyChecking", "accept-new"),
            ("UserKnownHostsFile", _ssh_path(self.known_hosts)),
            ("GlobalKnownHostsFile", "/dev/null"),
            ("CheckHostIP", "no"),
            ("HashKnownHosts", "no"),
            ("UpdateHostKeys", "no"),
        ]

    def login_options(self) -> list[tuple[str, str]]:
        """Key and keep-alive settings as ``(option, value)`` pairs (shared with ``soong ssh-config``)."""
        return [
            ("IdentityFile", _ssh_path(self.key_path)),
            ("IdentitiesOnly", "yes"),
            ("PreferredAuthentications", "publickey"),
            ("ServerAliveInterval", str(SERVER_ALIVE_INTERVAL)),
            ("ServerAliveCountMax", str(SERVER_ALIVE_COUNT_MAX)),
            ("ConnectTimeout", str(CONNECT_TIMEOUT)),
        ]

    def arguments(self, instance_id: str, *, batch: bool = True) -> list[str]:
        """ssh command-line options (everything before the destination) for an instance.

        ``batch`` adds ``BatchMode=yes`` (no prompts at all); an interactive
        session leaves it out so ssh may ask for a key's passphrase.
        """
        if not self.user:
            from soong.core.errors import ConfigError

            raise ConfigError("no login user for the instance: the provider names none",
                              hint="set it with 'soong config set ssh.user NAME'")
        pairs = self.login_options() + self.host_key_options(instance_id)
        pairs += [("ControlMaster", "no"), ("ControlPath", "none"), ("LogLevel", "ERROR")]
        if batch:
            pairs.append(("BatchMode", "yes"))
        args = ["-p", str(self.port), "-l", self.user]
        for option, value in pairs:
            args += ["-o", f"{option}={value}"]
        return args

    def destination(self, host: str) -> str:
        """The ssh destination for ``host`` (the user is passed with ``-l``)."""
        return host
