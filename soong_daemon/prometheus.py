"""A small reader and writer for the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Iterable, Mapping

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


class ParseError(ValueError):
    """A line that is not valid exposition format."""


@dataclasses.dataclass(frozen=True)
class Sample:
    """One sample line: metric name, labels and value."""

    name: str
    labels: Mapping[str, str]
    value: float


def _parse_labels(text: str, pos: int, lineno: int) -> tuple[dict[str, str], int]:
    labels: dict[str, str] = {}
    pos += 1  # after "{"
    while True:
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == "}":
            return labels, pos + 1
        match = _LABEL_NAME.match(text, pos)
        if not match:
            raise ParseError(f"line {lineno}: bad label name")
        name = match.group()
        pos = match.end()
        if text[pos:pos + 2] != '="':
            raise ParseError(f"line {lineno}: expected =\" after label {name}")
        pos += 2
        value = []
        while True:
            if pos >= len(text):
                raise ParseError(f"line {lineno}: unterminated label value")
            char = text[pos]
            if char == "\\":
                escaped = text[pos + 1:pos + 2]
                if escaped not in _ESCAPES:
                    raise ParseError(f"line {lineno}: bad escape in label value")
                value.append(_ESCAPES[escaped])
                pos += 2
            elif char == '"':
                pos += 1
                break
            else:
                value.append(char)
                pos += 1
        labels[name] = "".join(value)
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos < len(text) and text[pos] == "}":
            return labels, pos + 1
        else:
            raise ParseError(f"line {lineno}: expected , or }} in labels")


def _parse_value(token: str, lineno: int) -> float:
    special = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    if token in special:
        return special[token]
    try:
        return float(token)
    except ValueError:
        raise ParseError(f"line {lineno}: bad sample value") from None


def parse(text: str) -> list[Sample]:
    """All samples in ``text``; comments and blank lines are skipped; ParseError on a bad line."""
    samples = []
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _NAME.match(line)
        if not match:
            raise ParseError(f"line {lineno}: bad metric name")
        name, pos = match.group(), match.end()
        labels: dict[str, str] = {}
        if pos < len(line) and line[pos] == "{":
            labels, pos = _parse_labels(line, pos, lineno)
        rest = line[pos:].split()
        if not rest or len(rest) > 2:
            raise ParseError(f"line {lineno}: expected a value (and optional timestamp)")
        samples.append(Sample(name, labels, _parse_value(rest[0], lineno)))
    return samples


def total(samples: Iterable[Sample], name: str) -> float | None:
    """The sum of every sample called ``name`` over all label sets; None if there is none."""
    values = [s.value for s in samples if s.name == name and not math.isnan(s.value)]
    return sum(values) if values else None


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def render(metrics: Iterable[tuple[str, str, str, Iterable[tuple[Mapping[str, str], float]]]]) -> str:
    """Text for ``(name, type, help, [(labels, value), ...])`` families."""
    lines = []
    for name, kind, help_text, samples in metrics:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            label_text = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
            lines.append(f"{name}{{{label_text}}} {_format_value(value)}" if label_text
                         else f"{name} {_format_value(value)}")
    return "\n".join(lines) + "\n"
