"""The errors soong expects, each with a documented exit code.

Every expected failure is a :class:`SoongError`. The app turns one into a single
readable line on stderr and exits with the error's ``exit_code``; a traceback is
shown only with ``--debug``. The table of codes is in ``docs/errors.md``.
"""

from __future__ import annotations

# Exit codes (documented in docs/errors.md; tests check the table is current).
EXIT_OK = 0
EXIT_ERROR = 1  # unexpected or generic failure
EXIT_USAGE = 2  # bad command-line usage (argparse's own code)
EXIT_CONFIG = 3  # bad or unreadable configuration
EXIT_SECRET = 4  # a secret is missing or no keyring backend is usable
EXIT_API = 5  # the provider refused the request (auth, permission, invalid, quota)
EXIT_UNAVAILABLE = 6  # provider or host unreachable, timed out, rate limited, 5xx
EXIT_CAPACITY = 7  # no capacity for the requested instance type/region
EXIT_NOT_FOUND = 8  # the named instance, model, key or plugin does not exist
EXIT_ABORTED = 9  # the user declined, or confirmation was needed without a terminal
EXIT_BUDGET = 10  # a budget or cost cap would be exceeded
EXIT_UNCONFIRMED = 11  # an action was sent but its effect could not be confirmed (e.g. terminate)
EXIT_PREFLIGHT = 12  # the instance failed its preflight checks (it can serve nothing)

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ERROR: "unexpected error",
    EXIT_USAGE: "bad command-line usage",
    EXIT_CONFIG: "bad or unreadable configuration",
    EXIT_SECRET: "secret missing or no usable keyring backend",
    EXIT_API: "the provider refused the request",
    EXIT_UNAVAILABLE: "provider or host unavailable, timed out or rate limited",
    EXIT_CAPACITY: "no capacity for the requested instance type or region",
    EXIT_NOT_FOUND: "no such instance, model, key or plugin",
    EXIT_ABORTED: "aborted: declined, or confirmation needed without a terminal",
    EXIT_BUDGET: "a budget or cost cap would be exceeded",
    EXIT_UNCONFIRMED: "an action was sent but could not be confirmed",
    EXIT_PREFLIGHT: "the instance failed its preflight checks",
}


class SoongError(Exception):
    """Base of every expected soong failure: one readable line and an exit code."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(SoongError):
    """The command line asks for something impossible or contradictory."""

    exit_code = EXIT_USAGE


class ConfigError(SoongError):
    """The configuration file or an override is malformed or invalid."""

    exit_code = EXIT_CONFIG


class SecretError(SoongError):
    """A secret is missing, or no keyring backend can store it."""

    exit_code = EXIT_SECRET


class NotFoundError(SoongError):
    """A named thing (instance, model, plugin, key) does not exist."""

    exit_code = EXIT_NOT_FOUND


class AbortedError(SoongError):
    """The user declined, or a confirmation was needed and no terminal was there to ask."""

    exit_code = EXIT_ABORTED


class BudgetError(SoongError):
    """An action would pass a configured budget or cost cap."""

    exit_code = EXIT_BUDGET


class UnconfirmedError(SoongError):
    """An action with money at stake was sent but its effect could not be confirmed."""

    exit_code = EXIT_UNCONFIRMED


class PluginError(SoongError):
    """A plugin registered something invalid or clashing."""


class UnreachableError(SoongError):
    """A host or service (an instance, its daemon, a tunnel) could not be reached."""

    exit_code = EXIT_UNAVAILABLE


# --- provider API errors -------------------------------------------------------------


class ApiError(SoongError):
    """A provider API failure, carrying the provider's error ``code`` and ``suggestion``.

    Code branches on :attr:`code` (e.g. ``global/invalid-api-key``) or the subclass,
    never on the message text.
    """

    exit_code = EXIT_API
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        suggestion: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=suggestion)
        self.code = code
        self.suggestion = suggestion
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = self.message
        if self.code:
            text = f"{text} [{self.code}]"
        if self.suggestion:
            text = f"{text} ({self.suggestion})"
        return text


class AuthError(ApiError):
    """The API key is missing, wrong or revoked (HTTP 401)."""


class PermissionDeniedError(ApiError):
    """The account may not do this: inactive, billing problem, forbidden (HTTP 403)."""


class ApiNotFoundError(ApiError):
    """The provider does not know the requested object (HTTP 404)."""

    exit_code = EXIT_NOT_FOUND


class InvalidRequestError(ApiError):
    """The provider rejected the parameters (HTTP 400)."""


class CapacityError(ApiError):
    """No capacity for this instance type in this region right now."""

    exit_code = EXIT_CAPACITY


class QuotaExceededError(ApiError):
    """An account quota would be exceeded."""


class TransientError(ApiError):
    """A failure that may go away: network, timeout, 5xx, upstream ``provider/*`` outage."""

    exit_code = EXIT_UNAVAILABLE
    retryable = True


class RateLimitedError(TransientError):
    """The provider's rate limit was hit (HTTP 429); ``retry_after`` says when to try again."""


class AmbiguousLaunchError(ApiError):
    """A launch may or may not have happened and the follow-up lookup could not tell.

    Never retried blindly: the user is told to check ``soong status``.
    """

    exit_code = EXIT_UNCONFIRMED
