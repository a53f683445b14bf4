"""The live progress of ``soong start`` while it waits for the instance.

On a terminal: a small live panel (rich) with every step, a spinner on the
current one, the elapsed time and the daemon's boot phase. Elsewhere (a pipe,
a log file, a test): one plain line each time the step or the boot phase
changes, so the output stays readable and short.
"""

from __future__ import annotations

import time
from typing import IO, Any

from soong.core.readiness import LABELS, PHASES, Progress


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 60}:{seconds % 60:02d}"


class PlainProgress:
    """One line per change: ``soong: [1:05] model loading (boot phase sglang-loading)``."""

    def __init__(self, stream: IO[str], header: str) -> None:
        self.stream = stream
        self.header = header
        self._last: tuple[str, str | None, str] | None = None

    def __enter__(self) -> "PlainProgress":
        self.stream.write(f"soong: {self.header}\n")
        self.stream.flush()
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def update(self, progress: Progress) -> None:
        """Print the progress if the step, the boot phase or the detail changed."""
        key = (progress.phase, progress.daemon_phase, progress.detail)
        if key == self._last:
            return
        self._last = key
        extra = [f"boot phase {progress.daemon_phase}"] if progress.daemon_phase else []
        if progress.detail:
            extra.append(progress.detail)
        suffix = f" ({'; '.join(extra)})" if extra else ""
        self.stream.write(f"soong: [{_clock(progress.elapsed)}] {progress.label}{suffix}\n")
        self.stream.flush()

    def note(self, line: str) -> None:
        """Print one line that is not a step (a secret delivered, for example)."""
        self.stream.write(f"soong: {line}\n")
        self.stream.flush()


class LiveProgress:
    """A rich live panel listing the steps; the current one with a spinner."""

    def __init__(self, stream: IO[str], header: str) -> None:
        from rich.console import Console

        self.console = Console(file=stream, highlight=False)
        self.header = header
        self._progress: Progress | None = None
        self._live: Any = None
        self._started = time.monotonic()

    def __rich__(self) -> Any:
        return self._render()

    def _render(self) -> Any:
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 1))
        table.add_row(Text(self.header, style="bold"), "")
        current = self._progress.phase if self._progress else "booting"
        index = PHASES.index(current) if current in PHASES else 0
        for number, phase in enumerate(PHASES):
            if number < index or current == "ready":
                mark: Any = Text("✓", style="green")
            elif number == index:
                mark = Spinner("dots", style="cyan")
            else:
                mark = Text("·", style="dim")
            note = ""
            if number == index and self._progress is not None:
                parts = [f"boot phase {self._progress.daemon_phase}"] if self._progress.daemon_phase else []
                if self._progress.detail:
                    parts.append(self._progress.detail)
                note = "; ".join(parts)
            table.add_row(mark, Text(f"{LABELS[phase]:<15} {note}", style="dim" if number > index else ""))
        elapsed = time.monotonic() - self._started
        table.add_row("", Text(f"elapsed {_clock(elapsed)}  (Ctrl-C to stop waiting)", style="dim"))
        return table

    def __enter__(self) -> "LiveProgress":
        from rich.live import Live

        self._live = Live(self, console=self.console, refresh_per_second=4, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(*exc)

    def note(self, line: str) -> None:
        """Print one line above the panel."""
        if self._live is not None:
            self._live.console.print(f"soong: {line}", markup=False, highlight=False)
        else:
            self.console.print(f"soong: {line}", markup=False, highlight=False)

    def update(self, progress: Progress) -> None:
        """Show ``progress``."""
        self._progress = progress
        self._started = time.monotonic() - progress.elapsed
        if self._live is not None:
            self._live.refresh()


def progress_display(stream: IO[str], header: str) -> Any:
    """A live panel on a terminal, plain lines elsewhere."""
    try:
        live = stream.isatty()
    except (AttributeError, ValueError, OSError):
        live = False
    return LiveProgress(stream, header) if live else PlainProgress(stream, header)
