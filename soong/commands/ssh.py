"""``soong ssh`` (a shell or a command on an instance) and ``soong ssh-config`` (plain ``ssh NAME``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from soong.core.command import Command
from soong.core.errors import UnreachableError

#: ssh's own exit status for a failure of ssh itself (not of the remote command).
SSH_FAILED = 255


def shell_backend(context: Any) -> Any:
    """The tunnel backend that opens shells: the configured one if it can, else the first registered that can."""
    from soong.core.errors import UsageError
    from soong.core.interfaces import TunnelBackend

    def can(backend_class: Any) -> bool:
        return getattr(backend_class, "shell_argv", None) is not TunnelBackend.shell_argv

    configured = context.config.get("tunnel.backend")
    registry = context.plugins.tunnel_backends()
    names = ([configured] if configured in registry else []) + [n for n in registry if n != configured]
    for name in names:
        if can(registry[name]):
            return context.tunnel_backend(name)
    raise UsageError("no tunnel backend can open a shell on an instance (none implements shell_argv)")


def _instance_and_target(command: Any, instance_id: str | None) -> tuple[Any, Any]:
    from soong.core.selection import choose_instance
    from soong.core.tunnel_state import target_for

    instance = choose_instance(command.context, instance_id, stdin=command.app.stdin, stderr=command.app.stderr)
    if not instance.ip:
        raise UnreachableError(f"instance {instance.id} has no address yet (status {instance.status}); "
                               "try again when it is active")
    return instance, target_for(command.context, instance)


class Ssh(Command):
    """Open a shell on an instance, or run a command there (its exit status is passed through).

    Examples: 'soong ssh' (interactive), 'soong ssh -- nvidia-smi', 'soong ssh --instance-id ID -- uptime'.
    When ssh itself fails (exit status 255) the reason is explained: a changed host key,
    or a refused login with the key used and the keys the account has.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--instance-id", metavar="ID", help="the instance (default: the only running one, or ask)")
        parser.add_argument("-t", "--tty", action="store_true",
                            help="give the remote command a terminal (for full-screen programs such as htop)")
        parser.add_argument("remote_command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...",
                            help="command to run on the instance instead of a shell")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        remote = list(parsed_args.remote_command or [])
        if remote and remote[0] == "--":
            remote = remote[1:]
        _instance, target = _instance_and_target(self, parsed_args.instance_id)
        backend = shell_backend(self.context)
        argv = backend.shell_argv(target, remote, tty=parsed_args.tty)
        if not remote:
            problem = backend.diagnose(target)
            if problem is not None:
                raise problem
            for stream in (self.app.stdout, self.app.stderr, sys.stdout, sys.stderr):
                stream.flush()
            os.execv(argv[0], argv)
        status = _run_in_foreground(argv)
        if status == SSH_FAILED:
            problem = backend.diagnose(target)
            if problem is not None:
                self.app.stderr.write(f"soong: error: {problem}\n")
        return status


def _run_in_foreground(argv: list[str]) -> int:
    """Run ``argv`` with this terminal; Ctrl-C goes to it, not to soong. Return its exit status."""
    import signal
    import subprocess

    proc = subprocess.Popen(argv)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


class SshConfig(Command):
    """Write an ssh_config with a Host per running instance and include it from ~/.ssh/config.

    Afterwards plain 'ssh NAME', scp, rsync and editors' remote features reach the
    instances (NAME is the instance name). The Include line is added once, at the top
    of ~/.ssh/config, after a backup copy. Run again after instances change.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--no-include", action="store_true", help="do not touch ~/.ssh/config")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        from pathlib import Path

        from soong.core.errors import UsageError
        from soong.core.selection import RUNNING_STATUSES

        provider = self.context.provider()
        targets = [provider.tunnel_target(i) for i in provider.list_instances() if i.status in RUNNING_STATUSES]
        path = Path(self.context.paths.config_dir) / "ssh_config"
        home = Path(self.context.env.get("HOME") or os.path.expanduser("~"))
        include_from = None if parsed_args.no_include else home / ".ssh" / "config"
        backend = shell_backend(self.context)
        lines = backend.write_ssh_config(targets, path, include_from=include_from)
        if lines is None:
            raise UsageError(f"the tunnel backend '{backend.name}' writes no ssh_config")
        for line in lines:
            if line.startswith("warning: "):
                self.warn(line[len("warning: "):])
            else:
                self.app.stdout.write(f"{line}\n")
        return 0
