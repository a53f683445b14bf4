"""``soong config show|path|set|unset|migrate``: read and change the configuration file."""

from __future__ import annotations

from soong.core.command import Command, Lister
from soong.core.errors import ConfigError


class ShowConfig(Lister):
    """Show every configuration key (core's and the plugins') with its effective value and where it comes from."""

    def take_action(self, parsed_args):
        config = self.context.config
        rows = [(key.path, _text(value), source, key.env_var or "", config.schema.owner(key.path) or "core")
                for key, value, source in config.items()]
        return ("Key", "Value", "Source", "Environment variable", "Declared by"), rows


def _text(value):
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


class ConfigPath(Command):
    """Print the path of the configuration file."""

    def take_action(self, parsed_args):
        self.app.stdout.write(f"{self.context.paths.config_file}\n")


class SetConfig(Command):
    """Set one key in the configuration file (validated; written atomically)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("key", help="dotted key, e.g. defaults.lease_hours")
        parser.add_argument("value", help="new value (YAML scalar)")
        return parser

    def take_action(self, parsed_args):
        from soong.core.config import save_config

        config = self.context.config
        key = config.schema.by_path.get(parsed_args.key)
        if key is None or key.kind in ("list", "map"):
            raise ConfigError(f"'{parsed_args.key}' is not a key that can be set here; see 'soong config show'")
        value = key.coerce(parsed_args.value, from_text=True)
        save_config(config.updated_file_values({key.path: value}), config.path, schema=config.schema)
        self.app.stdout.write(f"{key.path} = {value}\n")


class UnsetConfig(Command):
    """Remove one key from the configuration file (its default applies again)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("key", help="dotted key")
        return parser

    def take_action(self, parsed_args):
        from soong.core.config import save_config

        config = self.context.config
        save_config(config.updated_file_values({parsed_args.key: None}), config.path, schema=config.schema)
        self.app.stdout.write(f"{parsed_args.key} unset\n")


class MigrateConfig(Command):
    """Copy the legacy gpu-dashboard config into soong's config file."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        self.add_yes_option(parser)
        return parser

    def take_action(self, parsed_args):
        from soong.core.config import read_config_file, save_config

        paths = self.context.paths
        legacy = paths.legacy_config_file
        if legacy is None or not legacy.exists():
            raise ConfigError("there is no legacy ~/.config/gpu-dashboard/config.yaml to migrate")
        if paths.config_file.exists():
            raise ConfigError(f"{paths.config_file} already exists; not overwriting it")
        schema = self.context.config.schema
        unknown: dict = {}
        values, warnings = read_config_file(legacy, schema=schema, unknown=unknown)
        for warning in warnings:
            self.warn(warning)
        self.confirm(f"Copy {legacy} to {paths.config_file}?", parsed_args)
        save_config({**unknown, **values}, paths.config_file, schema=schema)
        self.app.stdout.write(f"migrated {legacy} -> {paths.config_file} (the old file was left in place)\n")
