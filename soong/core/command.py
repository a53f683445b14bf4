"""Base classes for soong's cliff commands.

They skip what soong does not use and what makes start-up slow: cliff's
per-command stevedore hook lookup, its distribution scan for the epilog, and the
formatter plugins of Lister/ShowOne until output is actually formatted. A
third-party command should subclass these too.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cliff import command as _command
from cliff import lister as _lister
from cliff import show as _show

from soong.core.errors import AbortedError


class SoongCommandMixin:
    """What every soong command shares: the context, confirmations, lean start-up."""

    app: Any
    _epilog: str | None

    def _load_hooks(self) -> None:
        self._hooks = []

    def get_epilog(self) -> str:
        return self._epilog or ""

    @property
    def context(self) -> Any:
        """The app's :class:`~soong.core.context.Context`."""
        return self.app.context

    def confirm(self, question: str, parsed_args: argparse.Namespace) -> None:
        """Ask a yes/no question unless ``--yes``; refuse without a terminal.

        Raises :class:`~soong.core.errors.AbortedError` when declined or when no
        terminal can answer.
        """
        if getattr(parsed_args, "yes", False):
            return
        stdin = self.app.stdin
        if not (hasattr(stdin, "isatty") and stdin.isatty()):
            raise AbortedError(f"{question.rstrip('?')}: confirmation needed; rerun with --yes (no terminal to ask)")
        self.app.stderr.write(f"{question} [y/N] ")
        self.app.stderr.flush()
        answer = stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise AbortedError("aborted; nothing was changed")

    @staticmethod
    def add_yes_option(parser: argparse.ArgumentParser) -> None:
        """Add ``-y/--yes`` to a parser."""
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    def warn(self, message: str) -> None:
        """One warning line on stderr."""
        print(f"soong: warning: {message}", file=self.app.stderr or sys.stderr)


class Command(SoongCommandMixin, _command.Command):
    """A soong command that prints or does something and returns an exit code."""

    def take_action(self, parsed_args: argparse.Namespace) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class _LazyFormatters:
    """Defer loading cliff's formatter plugins until output is produced."""

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        loaded = obj.__dict__.get("_formatters_loaded")
        if loaded is None:
            loaded = obj._load_formatter_plugins()
            obj.__dict__["_formatters_loaded"] = loaded
        return loaded


class _LeanDisplay(SoongCommandMixin):
    _formatter_plugins = _LazyFormatters()

    def __init__(self, app: Any, app_args: Any, cmd_name: str | None = None) -> None:
        _command.Command.__init__(self, app, app_args, cmd_name=cmd_name)


class Lister(_LeanDisplay, _lister.Lister):
    """A command whose result is a table: ``take_action`` returns ``(columns, rows)``."""

    def take_action(self, parsed_args: argparse.Namespace) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class ShowOne(_LeanDisplay, _show.ShowOne):
    """A command whose result is one record: ``take_action`` returns ``(fields, values)``."""

    def take_action(self, parsed_args: argparse.Namespace) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError
