"""The sandbox's errors (exit code 1 unless the cause says otherwise; see docs/sandbox.md)."""

from __future__ import annotations

from soong.core.errors import EXIT_UNAVAILABLE, SoongError


class SandboxError(SoongError):
    """The sandbox could not be brought up, inspected or torn down."""


class PortInUseError(SandboxError):
    """An address the sandbox needs is taken by another program."""

    exit_code = EXIT_UNAVAILABLE
