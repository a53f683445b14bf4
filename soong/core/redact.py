"""Keep secrets out of every line soong prints or logs.

Every secret soong reads is registered here; :func:`redact` replaces them in any
text, and :class:`RedactingFilter` does so for log records. The app redacts error
lines and installs the filter on its log handlers.
"""

from __future__ import annotations

import logging

_SECRETS: set[str] = set()
MASK = "********"


def register_secret(value: str | None) -> None:
    """Remember a secret value so it is masked wherever it would be printed."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by a mask."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def mask(value: str, reveal: bool = False) -> str:
    """Show a secret as stars and its last four characters (or whole with ``reveal``)."""
    if reveal:
        return value
    if len(value) <= 8:
        return "*" * len(value)
    return "*" * 8 + value[-4:]


class RedactingFilter(logging.Filter):
    """A logging filter that masks registered secrets in the formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            message = redact(record.getMessage())
            record.msg, record.args = message, None
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
        return True
