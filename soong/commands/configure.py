"""``soong configure``: the API key, daemon token, default model, GPU, region, file system, lease, SSH key, firewall."""

from __future__ import annotations

import argparse
from typing import Any

from soong.core.command import Command
from soong.core.errors import NotFoundError, SecretError, UsageError


class Configure(Command):
    """Set up soong: interactively on a terminal, or with flags in scripts.

    The API key is checked with a real call and kept in the keyring (give it
    on stdin with --api-key-stdin, never on the command line). A daemon token
    is generated once and kept in the keyring. Nothing changes until the end:
    Ctrl-C leaves the old configuration as it was, and settings not asked
    about keep their values. The inbound firewall is checked too: when it lets
    in more than SSH, the wizard offers (and --ssh-only-firewall makes) a change
    that lets in only 22/tcp, saying first which instances it reaches.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--non-interactive", action="store_true", help="change only what the flags say")
        mode.add_argument("--interactive", action="store_true", help="ask the questions even without a terminal")
        parser.add_argument("--api-key-stdin", action="store_true", help="read the Lambda API key from stdin")
        parser.add_argument("--model", metavar="ID", help="default model")
        parser.add_argument("--gpu", metavar="TYPE", help="default instance type ('auto': decide at each start)")
        parser.add_argument("--region", metavar="NAME", help="preferred region ('any': decide at each start)")
        fs = parser.add_mutually_exclusive_group()
        fs.add_argument("--filesystem", metavar="NAME", help="persistent file system to attach")
        fs.add_argument("--no-filesystem", action="store_true", help="attach no file system")
        parser.add_argument("--create-filesystem", action="store_true",
                            help="create --filesystem NAME in --region if the account has no such file system")
        parser.add_argument("--lease-hours", type=float, metavar="H", help="lease of a new instance (0.25-8)")
        parser.add_argument("--ssh-key", metavar="PATH", help="private key soong connects with (its .pub is matched "
                                                               "against the account's keys)")
        parser.add_argument("--upload-ssh-key", metavar="NAME", nargs="?", const="",
                            help="upload the .pub of --ssh-key if the account lacks it (optionally as NAME)")
        parser.add_argument("--ssh-key-name", metavar="NAME", help="account SSH key to launch with")
        parser.add_argument("--ssh-only-firewall", action="store_true",
                            help="change the provider's inbound firewall so it lets in only SSH (22/tcp); on Lambda "
                                 "this replaces the account's global rules, for every instance of the account")
        parser.add_argument("--rotate-token", action="store_true", help="generate a new daemon token")
        parser.add_argument("--show-token", action="store_true", help="print the daemon token (it is a secret)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        from soong.core.configure_steps import Setup, commit

        interactive = parsed_args.interactive or (not parsed_args.non_interactive and _is_tty(self.app.stdin)
                                                  and not _has_flags(parsed_args))
        setup = Setup()
        if interactive:
            from soong.core.configure_wizard import Wizard
            from soong.core.prompts import Prompter

            prompter = Prompter(self.app.stdin, self.app.stderr)
            wizard = Wizard(self.context, prompter)
            wizard.run(setup)
            provider = wizard.provider
        else:
            provider = self._from_flags(parsed_args, setup)
        self._token(parsed_args, setup)
        if interactive and not self._review(setup):
            self.app.stderr.write("soong: nothing was changed\n")
            return 0
        for line in commit(self.context, setup, provider):
            self.app.stderr.write(f"soong: {line}\n")
        if parsed_args.show_token:
            self.app.stdout.write(f"{setup.daemon_token or self.context.secrets.require('daemon_token')}\n")
        return 0

    def _token(self, parsed_args: argparse.Namespace, setup: Any) -> None:
        import secrets as _random

        from soong.core.redact import register_secret

        try:
            existing = self.context.secrets.get("daemon_token")
        except SecretError:
            existing = None
        if parsed_args.rotate_token or not existing:
            setup.daemon_token = _random.token_urlsafe(32)
            register_secret(setup.daemon_token)
            if existing:
                self.warn("running instances keep the old token; 'soong status' cannot read their daemons")

    def _review(self, setup: Any) -> bool:
        from soong.core.prompts import Prompter

        ask = Prompter(self.app.stdin, self.app.stderr)
        ask.say("\nAbout to save:")
        for key, value in sorted(setup.changes.items()):
            ask.say(f"  {key} = {'(unset)' if value is None else value}")
        if setup.api_key:
            ask.say("  the new Lambda API key (keyring)")
        if setup.daemon_token:
            ask.say("  a new daemon token (keyring)")
        for name in setup.secrets:
            ask.say(f"  a new {name} (keyring)")
        if setup.upload_key:
            ask.say(f"  upload your public key as '{setup.upload_key[0]}'")
        if setup.create_filesystem:
            ask.say(f"  create file system '{setup.create_filesystem[0]}' in {setup.create_filesystem[1]}")
        if setup.firewall_change is not None:
            ask.say(f"  leave only SSH open in {setup.firewall_change.before.scope}")
        return ask.yes_no("Save?", default=True)

    def _from_flags(self, args: argparse.Namespace, setup: Any) -> Any:
        from soong.core import configure_steps as steps

        api_key = None
        if args.api_key_stdin:
            api_key = self.app.stdin.readline().strip()
            if not api_key:
                raise SecretError("--api-key-stdin: no key on stdin")
            setup.api_key = api_key
        provider = steps.provider_with_key(self.context, api_key)
        needs_provider = api_key or args.gpu not in (None, "auto") or args.filesystem or args.ssh_key \
            or args.ssh_key_name
        types = provider.list_instance_types() if needs_provider else []
        if args.model:
            from soong.core.catalog import find_model

            setup.changes["defaults.model"] = find_model(self.context.models(), args.model).id
        if args.gpu:
            setup.changes["defaults.gpu"] = None if args.gpu == "auto" else self._known_type(args.gpu, types)
        if args.region:
            setup.changes["lambda.default_region"] = None if args.region == "any" else args.region
        if args.lease_hours is not None:
            setup.changes["defaults.lease_hours"] = steps.check_lease(args.lease_hours)
        if args.no_filesystem:
            setup.changes["lambda.filesystem_name"] = None
        elif args.filesystem:
            self._filesystem(args, setup, provider)
        self._ssh(args, setup, provider)
        if args.ssh_only_firewall:
            self._ssh_only_firewall(setup, provider)
        return provider

    def _ssh_only_firewall(self, setup: Any, provider: Any) -> None:
        """Plan the SSH-only change (made by commit), saying what it closes and whom it reaches."""
        from soong.core import configure_steps as steps
        from soong.core.firewall_check import change_lines

        region = setup.changes.get("lambda.default_region", self.context.config.get("lambda.default_region"))
        plan = steps.firewall_plan(provider, region)
        found, change = plan.found, plan.change
        if plan.note:
            self.warn(f"{plan.note}; the change below is for the other regions")
        if found is None:
            raise UsageError(f"provider '{provider.name}' cannot read or change its inbound firewall")
        if found.ssh_only:
            self.app.stderr.write(f"soong: {found.scope} already let in only SSH (22/tcp); nothing to change\n")
            return
        if change is None:
            raise UsageError(f"provider '{provider.name}' cannot change {found.scope}",
                             hint="close the ports in the provider's console")
        for line in change_lines(change):
            self.app.stderr.write(f"soong: {line}\n")
        setup.firewall_change = change

    @staticmethod
    def _known_type(name: str, types: Any) -> str:
        if not any(t.name == name for t in types):
            raise NotFoundError(f"the provider has no instance type '{name}'", hint="see 'soong available --all'")
        return name

    def _filesystem(self, args: argparse.Namespace, setup: Any, provider: Any) -> None:
        systems = {fs.name: fs for fs in provider.list_file_systems()}
        fs = systems.get(args.filesystem)
        if fs is not None:
            setup.changes["lambda.filesystem_name"] = fs.name
            return
        if not args.create_filesystem:
            raise NotFoundError(f"the account has no file system '{args.filesystem}'",
                                hint="add --create-filesystem (with --region) to create it")
        region = setup.changes.get("lambda.default_region") or self.context.config.get("lambda.default_region")
        if not region:
            raise UsageError("--create-filesystem needs a region: add --region NAME")
        setup.create_filesystem = (args.filesystem, region)

    def _ssh(self, args: argparse.Namespace, setup: Any, provider: Any) -> None:
        from soong.core import configure_steps as steps

        if args.ssh_key_name:
            names = [k.name for k in provider.list_ssh_keys()]
            if args.ssh_key_name not in names:
                raise NotFoundError(f"the account has no SSH key '{args.ssh_key_name}' (known: {', '.join(names) or 'none'})")
            setup.changes["lambda.ssh_key_name"] = args.ssh_key_name
        if not args.ssh_key:
            if args.upload_ssh_key is not None:
                raise UsageError("--upload-ssh-key needs --ssh-key PATH")
            return
        setup.changes["ssh.key_path"] = args.ssh_key
        found = steps.read_public_key(args.ssh_key)
        if found is None:
            raise NotFoundError(f"no public key at {args.ssh_key}.pub", hint=f"create one: ssh-keygen -t ed25519 -f {args.ssh_key}")
        match = steps.match_key(found[0], provider.list_ssh_keys())
        if match is not None:
            setup.changes["lambda.ssh_key_name"] = match.name
        elif args.upload_ssh_key is not None:
            import socket

            setup.upload_key = (args.upload_ssh_key or f"soong-{socket.gethostname().split('.')[0]}"[:40], found[0])
        else:
            raise NotFoundError(f"{found[1]} is not one of the account's SSH keys", hint="add --upload-ssh-key to upload it")


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _has_flags(args: argparse.Namespace) -> bool:
    names = ("api_key_stdin", "model", "gpu", "region", "filesystem", "no_filesystem", "lease_hours", "ssh_key",
             "ssh_key_name", "rotate_token", "ssh_only_firewall")
    return any(getattr(args, name) not in (None, False) for name in names)
