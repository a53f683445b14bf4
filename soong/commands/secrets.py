"""``soong secrets set|show|delete|list``: the daemon token, the providers' API keys and the plugins' secrets in the keyring."""

from __future__ import annotations

import sys

from soong.core.command import Command, Lister, ShowOne
from soong.core.errors import NotFoundError, SecretError


class SetSecret(Command):
    """Store a secret (read from a hidden prompt or stdin, never from the command line)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", help="secret name, e.g. lambda_api_key, daemon_token, hf_token (see 'soong secrets list')")
        parser.add_argument("--stdin", action="store_true", help="read the value from standard input")
        return parser

    def take_action(self, parsed_args):
        from soong.core.secrets import check_name

        name = check_name(parsed_args.name)
        stdin = self.app.stdin
        if parsed_args.stdin or not (hasattr(stdin, "isatty") and stdin.isatty()):
            value = stdin.readline().strip()
        else:
            import getpass

            value = getpass.getpass(f"value for {name}: ").strip()
        if not value:
            raise SecretError(f"no value given for '{name}'; nothing stored")
        store = self.context.secrets
        store.set(name, value)
        self.app.stdout.write(f"stored '{name}' in {store.backend_description()}\n")


class ShowSecret(ShowOne):
    """Show a secret masked (all but its last 4 characters) unless --reveal."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", help="secret name")
        parser.add_argument("--reveal", action="store_true", help="print the whole value")
        return parser

    def take_action(self, parsed_args):
        from soong.core.redact import mask

        store = self.context.secrets
        value = store.get(parsed_args.name)
        if value is None:
            raise NotFoundError(f"secret '{parsed_args.name}' is not set")
        if parsed_args.reveal and not sys.stdout.isatty():
            self.warn(f"revealing '{parsed_args.name}' to a non-terminal output")
        return ("name", "value", "source"), (parsed_args.name, mask(value, parsed_args.reveal), store.source(parsed_args.name))


class DeleteSecret(Command):
    """Delete a stored secret."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", help="secret name")
        return parser

    def take_action(self, parsed_args):
        if not self.context.secrets.delete(parsed_args.name):
            raise NotFoundError(f"secret '{parsed_args.name}' was not stored")
        self.app.stdout.write(f"deleted '{parsed_args.name}'\n")


class ListSecrets(Lister):
    """List the known secrets (core's and those plugins declare), whether each is set and where from (values never shown)."""

    def take_action(self, parsed_args):
        from soong.core.secrets import KNOWN_SECRET_DOCS

        store = self.context.secrets
        declared = {secret.name: (plugin, secret.doc) for plugin, secret in self.context.plugins.secrets()}
        rows = []
        for name, env in store.known().items():
            plugin, doc = declared.get(name, ("core", KNOWN_SECRET_DOCS.get(name, "")))
            rows.append((name, env, store.source(name) or "not set", plugin, doc))
        return ("Name", "Environment variable", "Source", "Declared by", "Meaning"), rows

