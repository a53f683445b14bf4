"""Questions on the terminal for interactive commands (``soong configure``).

A :class:`Prompter` reads answers from ``stdin`` and writes questions to
``stderr`` (stdout stays for results). Secrets are read without echo when stdin
is a terminal. End of input is :class:`~soong.core.errors.AbortedError`, so a
closed pipe never loops. Every question has a default that Enter accepts.
"""

from __future__ import annotations

import dataclasses
from typing import IO, Any, Callable, Sequence

from soong.core.errors import AbortedError


@dataclasses.dataclass(frozen=True)
class Option:
    """One choice: ``value`` is returned, ``label`` is shown, ``note`` after it."""

    value: Any
    label: str
    note: str = ""


class Prompter:
    """Asks questions on ``stderr`` and reads answers from ``stdin``."""

    def __init__(self, stdin: IO[str], stderr: IO[str], *, getpass: Callable[..., str] | None = None) -> None:
        self.stdin = stdin
        self.stderr = stderr
        self._getpass = getpass

    def say(self, text: str = "") -> None:
        """A line of explanation."""
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def _read(self) -> str:
        line = self.stdin.readline()
        if line == "":
            raise AbortedError("no answer (end of input); nothing was changed")
        return line.strip()

    def _is_tty(self) -> bool:
        try:
            return bool(self.stdin.isatty())
        except (AttributeError, ValueError, OSError):
            return False

    def text(self, question: str, default: str | None = None, *, check: Callable[[str], str | None] | None = None) -> str:
        """Free text; Enter keeps ``default``; ``check`` returns a problem to ask again."""
        shown = f" [{default}]" if default else ""
        while True:
            self.stderr.write(f"{question}{shown}: ")
            self.stderr.flush()
            answer = self._read() or (default or "")
            problem = check(answer) if check else (None if answer else "an answer is needed")
            if not problem:
                return answer
            self.say(f"  {problem}")

    def secret(self, question: str) -> str:
        """A secret, not echoed on a terminal; empty when the user just presses Enter."""
        if self._is_tty():
            import getpass as _getpass

            reader = self._getpass or _getpass.getpass
            try:
                return reader(f"{question}: ", stream=self.stderr).strip()
            except EOFError:
                raise AbortedError("no answer (end of input); nothing was changed") from None
        self.stderr.write(f"{question}: ")
        self.stderr.flush()
        return self._read()

    def yes_no(self, question: str, default: bool = False) -> bool:
        """Yes or no; Enter keeps ``default``."""
        hint = "Y/n" if default else "y/N"
        while True:
            self.stderr.write(f"{question} [{hint}] ")
            self.stderr.flush()
            answer = self._read().lower()
            if not answer:
                return default
            if answer in ("y", "yes"):
                return True
            if answer in ("n", "no"):
                return False
            self.say("  answer y or n")

    def choose(self, question: str, options: Sequence[Option], default: Any = None) -> Any:
        """One option's value, by number or by its value's text; Enter keeps ``default``."""
        self.say(question)
        default_number = None
        for number, option in enumerate(options, 1):
            marker = "*" if option.value == default else " "
            if option.value == default:
                default_number = number
            note = f"  {option.note}" if option.note else ""
            self.say(f" {marker}{number:>2}) {option.label}{note}")
        shown = f" [{default_number}]" if default_number else ""
        while True:
            self.stderr.write(f"Choose 1-{len(options)}{shown}: ")
            self.stderr.flush()
            answer = self._read()
            if not answer and default_number:
                return options[default_number - 1].value
            for number, option in enumerate(options, 1):
                if answer == str(number) or (answer and answer == str(option.value)):
                    return option.value
            self.say(f"  type a number from 1 to {len(options)}")
