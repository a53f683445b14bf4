"""Durations on the command line: ``30m``, ``12h``, ``7d``, ``2w``, ``1h30m``, ``1.5h``.

A duration is one or more ``<number><unit>`` parts with units ``s``, ``m``, ``h``,
``d`` and ``w``, each unit at most once and largest first. A bare number is not
accepted (is ``7`` seconds or days?). :func:`format_duration` writes the shortest
canonical form, which :func:`parse_duration` reads back to the same value.
"""

from __future__ import annotations

import datetime as _dt
import re

from soong.core.errors import UsageError

#: Seconds per unit, largest first (the required order of parts).
UNITS: dict[str, int] = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
#: The longest duration accepted (ten years): beyond it is surely a typo.
MAX_SECONDS = 10 * 366 * 86400

_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")


def parse_duration(text: str, *, allow_zero: bool = False) -> _dt.timedelta:
    """Parse ``text`` such as ``7d`` or ``1h30m`` into a timedelta.

    Raises :class:`~soong.core.errors.UsageError` (one readable line) for anything
    else: empty text, an unknown unit, a repeated or out-of-order unit, a negative
    or (unless ``allow_zero``) zero duration, or one longer than ten years.
    """
    if not isinstance(text, str):
        raise UsageError(f"invalid duration {text!r}")
    cleaned = text.strip().lower()
    example = "use e.g. 30m, 12h, 7d or 1h30m"
    if not cleaned:
        raise UsageError(f"empty duration ({example})")
    position = 0
    seen: list[str] = []
    total = 0.0
    for match in _PART.finditer(cleaned):
        if match.start() != position:
            break
        number, unit = match.groups()
        if unit in seen:
            raise UsageError(f"invalid duration {text!r}: unit '{unit}' given twice ({example})")
        if seen and list(UNITS).index(unit) < list(UNITS).index(seen[-1]):
            raise UsageError(f"invalid duration {text!r}: write larger units first ({example})")
        seen.append(unit)
        total += float(number) * UNITS[unit]
        position = match.end()
    if position != len(cleaned) or not seen:
        raise UsageError(f"invalid duration {text!r} ({example})")
    if total > MAX_SECONDS:
        raise UsageError(f"duration {text!r} is longer than ten years")
    if total == 0 and not allow_zero:
        raise UsageError(f"duration {text!r} is zero")
    return _dt.timedelta(seconds=round(total, 6))


def format_duration(value: _dt.timedelta) -> str:
    """The canonical text of a non-negative duration, whole seconds (``1d2h``, ``45m``, ``0s``)."""
    seconds = int(round(value.total_seconds()))
    if seconds < 0:
        raise ValueError("negative duration")
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_hours(hours: float) -> str:
    """A short human form of a number of hours, for tables: ``45m``, ``3h20m``, ``2d4h``."""
    minutes = int(round(max(hours, 0.0) * 60))
    if minutes < 60:
        return f"{minutes}m"
    days, rest = divmod(minutes, 24 * 60)
    hrs, mins = divmod(rest, 60)
    if days:
        return f"{days}d{hrs}h" if hrs else f"{days}d"
    return f"{hrs}h{mins:02d}m" if mins else f"{hrs}h"
