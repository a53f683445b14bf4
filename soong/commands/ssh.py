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


def _instance_and_settings(command: Any, instance_id: str | None) -> tuple[Any, Any]:
    from soong.core.selection import choose_instance
    from soong.plugins.plumbum_ssh.diagnose import check_key_file
    from soong.plugins.plumbum_ssh.options import SshSettings

    instance = choose_instance(command.context, instance_id, stdin=command.app.stdin, stderr=command.app.stderr)
    if not instance.ip:
        raise UnreachableError(f"instance {instance.id} has no address yet (status {instance.status}); "
                               "try again when it is active")
    settings = SshSettings.from_context(command.context)
    check_key_file(settings)
    return instance, settings


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
        from soong.plugins.plumbum_ssh.backend import ssh_command

        remote = list(parsed_args.remote_command or [])
        if remote and remote[0] == "--":
            remote = remote[1:]
        instance, settings = _instance_and_settings(self, parsed_args.instance_id)
        ssh = str(ssh_command().executable)
        if not remote:
            self._probe_or_raise(ssh, instance, settings)
            argv = [ssh, *settings.arguments(instance.id, batch=False), settings.destination(instance.ip)]
            for stream in (self.app.stdout, self.app.stderr, sys.stdout, sys.stderr):
                stream.flush()
            os.execv(ssh, argv)
        tty = ["-t"] if parsed_args.tty else []
        argv = [ssh, *settings.arguments(instance.id), *tty, settings.destination(instance.ip), *remote]
        status = _run_in_foreground(argv)
        if status == SSH_FAILED:
            problem = self._probe(ssh, instance, settings)
            if problem is not None:
                self.app.stderr.write(f"soong: error: {problem}\n")
        return status

    def _probe(self, ssh: str, instance: Any, settings: Any) -> Exception | None:
        """Connect once without a command; None if that works, else the explained failure."""
        import subprocess

        from soong.plugins.plumbum_ssh import diagnose

        argv = [ssh, *settings.arguments(instance.id), "-T", settings.destination(instance.ip), "true"]
        try:
            out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return UnreachableError(f"ssh to {instance.ip} did not finish within 60s")
        if out.returncode == 0:
            return None
        error = diagnose.failure_error(self.context, settings, out.stderr, instance_id=instance.id, host=instance.ip,
                                       instance=instance)
        if isinstance(error, diagnose.SshLoginError) and diagnose.key_needs_passphrase(settings.key_path):
            return None  # a passphrase-protected key without an agent: let ssh ask for the passphrase
        return error

    def _probe_or_raise(self, ssh: str, instance: Any, settings: Any) -> None:
        problem = self._probe(ssh, instance, settings)
        if problem is not None:
            raise problem


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

        from soong.core.atomic import write_private
        from soong.core.selection import RUNNING_STATUSES
        from soong.plugins.plumbum_ssh import ssh_config_file
        from soong.plugins.plumbum_ssh.options import SshSettings

        instances = [i for i in self.context.provider().list_instances() if i.status in RUNNING_STATUSES]
        settings = SshSettings.from_context(self.context)
        path = Path(self.context.paths.config_dir) / "ssh_config"
        write_private(path, ssh_config_file.render(instances, settings))
        hosts = ssh_config_file.host_names(i for i in instances if i.ip)
        out = self.app.stdout
        out.write(f"wrote {path} ({len(hosts)} host{'s' if len(hosts) != 1 else ''})\n")
        for alias, instance in hosts:
            out.write(f"  {alias}: {instance.id} at {instance.ip}\n")
        if not settings.key_path.is_file():
            self.warn(f"SSH key {settings.key_path} does not exist (config ssh.key_path)")
        if parsed_args.no_include:
            return 0
        home = Path(self.context.env.get("HOME") or os.path.expanduser("~"))
        user_config = home / ".ssh" / "config"
        added, backup = ssh_config_file.ensure_include(user_config, path)
        if added:
            note = f" (backup: {backup})" if backup else ""
            out.write(f"added an Include line to {user_config}{note}\n")
        else:
            out.write(f"{user_config} already includes it\n")
        return 0
