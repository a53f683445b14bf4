"""Which class runs for each ``soong`` command name: the built-ins keep theirs.

Commands are entry points of the ``soong.cli`` group. cliff's own
``CommandManager`` takes them in whatever order ``importlib.metadata`` lists the
installed distributions and lets the last one win, so any installed package
could replace ``soong stop``, the command that ends billing, without a word.
:class:`SoongCommandManager` instead gives every built-in name (the ``soong``
distribution's entry points) to the built-in, records a third-party entry point
with the same name as a :class:`CommandClash`, and runs it only when the user
allowed exactly that package to replace exactly that command
(``plugins.allowed_command_overrides``, entries ``PACKAGE:COMMAND``). It reads
entry points without importing them (cliff's manager goes through stevedore,
which imports every command module), so ``soong --help`` stays lean.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

from cliff import commandmanager

DIST_NAME = "soong"
#: The config key listing ``PACKAGE:COMMAND`` pairs allowed to replace a built-in command.
OVERRIDE_KEY = "plugins.allowed_command_overrides"


@dataclasses.dataclass(frozen=True)
class CommandClash:
    """A third-party entry point whose command name is a built-in's."""

    name: str
    distribution: str
    version: str
    entry_point: Any

    @property
    def allow_entry(self) -> str:
        """The ``plugins.allowed_command_overrides`` entry that lets it run."""
        return f"{self.distribution}:{self.name.replace(' ', '_')}"

    def refusal(self) -> str:
        """The one-line warning shown when the built-in runs instead."""
        return (f"package {self.distribution} {self.version} also provides the command '{self.name}'; the built-in "
                f"one runs (to use the package's: soong config set {OVERRIDE_KEY} {self.allow_entry})")


def _distribution(ep: Any) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    return (dist.name, dist.version) if dist is not None else ("", "")


class SoongCommandManager(commandmanager.CommandManager):
    """cliff's command manager with built-in names protected and entry points loaded only when run."""

    def __init__(self, namespace: str, entry_points: Iterable[Any] | None = None) -> None:
        self.clashes: dict[str, list[CommandClash]] = {}
        self.sources: dict[str, tuple[str, str]] = {}
        self.found_name: str | None = None
        #: Where the ``plugins.allowed_command_overrides`` list comes from (read only when a clash is run).
        self.allowed_overrides: Callable[[], Iterable[str]] = lambda: ()
        self.warn: Callable[[str], None] = lambda message: None
        self._given = None if entry_points is None else list(entry_points)
        super().__init__(namespace)

    def load_commands(self, namespace: str) -> None:
        """Take ``namespace``'s entry points: built-ins first, then the others by name, clashes set aside."""
        self.group_list.append(namespace)
        if self._given is None:
            from importlib.metadata import entry_points

            found = list(entry_points(group=namespace))
        else:
            found = list(self._given)
        builtin = [ep for ep in found if _distribution(ep)[0] == DIST_NAME]
        others = sorted((ep for ep in found if _distribution(ep)[0] != DIST_NAME),
                        key=lambda ep: (ep.name, _distribution(ep)[0]))
        for ep in builtin + others:
            name = ep.name.replace("_", " ") if self.convert_underscores else ep.name
            dist, version = _distribution(ep)
            if name in self.commands:
                if self.sources[name][0] == DIST_NAME and dist != DIST_NAME:
                    self.clashes.setdefault(name, []).append(CommandClash(name, dist, version, ep))
                continue  # two third-party packages: the first by package name keeps it (listed by soong plugins)
            self.commands[name] = ep
            self.sources[name] = (dist, version)

    def find_command(self, argv: list[str]) -> tuple[Any, str, list[str]]:
        """cliff's lookup (whole names, then a unique partial name), plus the name it found in ``found_name``."""
        start = self._get_last_possible_command_index(argv)
        for i in range(start, 0, -1):
            name = " ".join(argv[:i])
            found = name if name in self.commands else None
            if found is None:
                candidates = commandmanager._get_commands_by_partial_name(argv[:i], list(self.commands))
                found = candidates[0] if len(candidates) == 1 else None
            if found:
                self.found_name = found
                return self.load(found), name, argv[i:]
        raise ValueError(f"Unknown command {argv!r}")

    def load(self, name: str) -> Any:
        """The command class for ``name``: a clash goes to the built-in unless the override is allowed."""
        entry_point = self.commands[name]
        if name in self.clashes:
            chosen, refused = self.resolve_clash(name, self.allowed_overrides())
            for clash in refused:
                self.warn(clash.refusal())
            if chosen is not None:
                dist, version = _distribution(chosen)
                self.warn(f"running package {dist} {version}'s '{name}' in place of the built-in one "
                          f"(allowed by {OVERRIDE_KEY})")
                entry_point = chosen
        try:
            return entry_point.load()
        except Exception as exc:
            from soong.core.errors import PluginError

            dist, version = self.sources.get(name, ("", ""))
            raise PluginError(f"the command '{name}' of package {dist or '?'} could not be loaded: "
                              f"{type(exc).__name__}: {exc}") from None

    def third_party(self) -> list[tuple[str, str, str, Any, str]]:
        """Every third-party command entry point: ``(name, distribution, version, entry point, status)``.

        ``status`` is ``loaded`` (it is the command of that name) or ``refused`` (a built-in keeps the name).
        """
        rows = [(name, dist, version, self.commands[name], "loaded")
                for name, (dist, version) in self.sources.items() if dist != DIST_NAME]
        rows += [(c.name, c.distribution, c.version, c.entry_point, "refused")
                 for clashes in self.clashes.values() for c in clashes]
        return sorted(rows, key=lambda row: (row[0], row[1]))

    def resolve_clash(self, name: str, allowed: Iterable[str]) -> tuple[Any | None, list[CommandClash]]:
        """For command ``name``: the allowed third-party entry point (or None) and the clashes refused."""
        allowed = {entry.strip() for entry in allowed}
        chosen = None
        refused = []
        for clash in self.clashes.get(name, []):
            if chosen is None and clash.allow_entry in allowed:
                chosen = clash.entry_point
            else:
                refused.append(clash)
        return chosen, refused
