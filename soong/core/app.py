"""The ``soong`` command-line application (a cliff App).

Commands are found through the entry-point namespace ``soong.cli``. Expected
failures (:class:`~soong.core.errors.SoongError`) end as one line on stderr with
their documented exit code; any other exception is one line too, exit code 1,
and a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import sys
from typing import Any

from cliff import app as _app
from cliff import help as _help

from soong import __version__
from soong.core.command_loader import SoongCommandManager
from soong.core.errors import EXIT_ERROR, EXIT_USAGE, SoongError
from soong.core.redact import RedactingFilter, redact

_SIGINT_EXIT = 130


class LeanHelpAction(argparse.Action):
    """Top-level ``--help``: the global options and a one-line list of commands.

    Unlike cliff's own, it does not scan installed distributions, which costs tens
    of milliseconds on every call.
    """

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        app = self.default
        out = app.stdout
        parser.print_help(out)
        out.write("\nCommands:\n")
        for name, ep in sorted(app.command_manager):
            try:
                factory = ep.load()
                kwargs = {"cmd_name": name} if "cmd_name" in inspect.getfullargspec(factory.__init__).args else {}
                one_liner = factory(app, None, **kwargs).get_description().split("\n")[0].rstrip(".")
            except Exception as exc:  # a broken third-party command must not break help
                one_liner = f"(could not load: {type(exc).__name__})"
            out.write(f"  {name:<18} {one_liner}\n")
        raise _help.HelpExit()


class SoongApp(_app.App):
    """soong: launch, watch and stop LLM-serving GPU instances."""

    CONSOLE_MESSAGE_FORMAT = "soong: %(message)s"

    def __init__(self, **streams: Any) -> None:
        super().__init__(
            description="Launch, watch and stop LLM-serving GPU instances on Lambda Cloud.",
            version=__version__,
            command_manager=SoongCommandManager("soong.cli"),
            deferred_help=True,
            **streams,
        )
        self._context: Any = None
        self.last_error: BaseException | None = None
        self.command_manager.allowed_overrides = self._allowed_command_overrides
        self.command_manager.warn = lambda message: self.stderr.write(f"soong: warning: {message}\n")

    def _allowed_command_overrides(self) -> list[str]:
        """``plugins.allowed_command_overrides`` (none when the config cannot be read: the built-in runs)."""
        from soong.core.command_loader import OVERRIDE_KEY

        try:
            return list(self.context.config.get(OVERRIDE_KEY) or [])
        except SoongError:
            return []

    def build_option_parser(self, description: Any, version: Any, argparse_kwargs: Any = None) -> argparse.ArgumentParser:
        parser = super().build_option_parser(description, version, argparse_kwargs)
        parser.add_argument("--profile", metavar="NAME", default=None,
                            help="configuration profile to use (default: $SOONG_PROFILE or the default profile)")
        return parser

    def print_help_if_requested(self) -> None:
        if self.deferred_help and self.options.deferred_help:
            LeanHelpAction([], argparse.SUPPRESS, default=self)(self.parser, self.options, None, None)

    def configure_logging(self) -> None:
        import os

        from soong.core.redact import register_secret
        from soong.core.secrets import KNOWN_SECRETS

        for var in KNOWN_SECRETS.values():  # secrets given through the environment are masked too
            register_secret(os.environ.get(var))
        super().configure_logging()
        for handler in logging.getLogger("").handlers:
            handler.addFilter(RedactingFilter())
        for noisy in ("stevedore", "urllib3", "keyring", "plumbum"):
            logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLogger(noisy).level))

    @property
    def context(self) -> Any:
        """The :class:`~soong.core.context.Context`, built on first use."""
        if self._context is None:
            from soong.core.context import Context

            self._context = Context(profile=getattr(self.options, "profile", None))
            for warning in self._context.config.warnings:
                self.stderr.write(f"soong: warning: {warning}\n")
        return self._context

    @context.setter
    def context(self, value: Any) -> None:
        self._context = value

    def run(self, argv: list[str]) -> int:
        if not argv:
            argv = ["--help"]
        return super().run(argv)

    def run_subcommand(self, argv: list[str]) -> int:
        try:
            subcommand = self.command_manager.find_command(argv)
        except SoongError as exc:
            return self._report(exc, exc.exit_code)
        except ValueError:
            matches = self.get_fuzzy_matches(argv[0])
            hint = f"; did you mean {', '.join(matches[:3])}?" if matches else "; see 'soong --help'"
            self.stderr.write(f"soong: '{' '.join(argv)}' is not a soong command{hint}\n")
            return EXIT_USAGE
        cmd_factory, cmd_name, sub_argv = subcommand
        kwargs = {"cmd_name": cmd_name} if "cmd_name" in inspect.getfullargspec(cmd_factory.__init__).args else {}
        cmd = cmd_factory(self, self.options, **kwargs)
        result = EXIT_ERROR
        try:
            self.prepare_to_run_command(cmd)
            parsed_args = cmd.get_parser(f"{self.NAME} {cmd_name}").parse_args(sub_argv)
            result = cmd.run(parsed_args)
        except _help.HelpExit:
            result = 0
        except SoongError as exc:
            self.last_error = exc
            result = self._report(exc, exc.exit_code)
        except KeyboardInterrupt:
            self.stderr.write("soong: interrupted\n")
            return _SIGINT_EXIT
        except BrokenPipeError:
            raise
        except Exception as exc:
            self.last_error = exc
            result = self._report(exc, EXIT_ERROR, unexpected=True)
        return result

    def _report(self, exc: BaseException, code: int, *, unexpected: bool = False) -> int:
        if self.options.debug:
            import traceback

            self.stderr.write(redact("".join(traceback.format_exception(exc))))
        text = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        if unexpected:
            text = f"unexpected error: {type(exc).__name__}: {text} (rerun with --debug for details)"
        self.stderr.write(f"soong: error: {text}\n")
        return code


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    app = SoongApp()
    try:
        return app.run(sys.argv[1:] if argv is None else argv)
    except BrokenPipeError:
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
