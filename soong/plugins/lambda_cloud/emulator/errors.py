"""The Lambda Cloud API's error responses, as the emulator sends them.

Every failure is ``{"error": {"code", "message", "suggestion"?}}`` with the HTTP
status and code the official OpenAPI description documents for it.
"""

from __future__ import annotations

import math
from typing import Any


class EmulatedError(Exception):
    """An API error to send back: HTTP status, Lambda error code, message, suggestion."""

    def __init__(self, status: int, code: str, message: str, suggestion: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.suggestion = suggestion
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON error envelope."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.suggestion is not None:
            error["suggestion"] = self.suggestion
        return {"error": error}


def unauthorized() -> EmulatedError:
    """401: missing, malformed or unknown API key."""
    return EmulatedError(401, "global/invalid-api-key", "API key was invalid, expired, or deleted.",
                         "Check your API key or create a new one, then try again.")


def account_inactive() -> EmulatedError:
    """403: the account is inactive."""
    return EmulatedError(403, "global/account-inactive", "Your account is inactive.",
                         "Make sure you have verified your email address and have a valid payment method. "
                         "Contact Support if problems continue.")


def invalid_address() -> EmulatedError:
    """403: the billing address is invalid (launch and file system creation)."""
    return EmulatedError(403, "global/invalid-address", "Your billing address is invalid.",
                         "Make sure your billing address is valid. Contact Support if problems continue.")


def invalid_parameters(message: str = "Invalid request data.", suggestion: str | None = None) -> EmulatedError:
    """400: the request body or parameters are invalid."""
    return EmulatedError(400, "global/invalid-parameters", message, suggestion)


def instance_not_found() -> EmulatedError:
    """404: no such instance."""
    return EmulatedError(404, "global/object-does-not-exist", "Specified instance does not exist.")


def launch_resource_not_found(message: str, suggestion: str) -> EmulatedError:
    """404: a resource named in a launch request (type, key, file system, image) does not exist."""
    return EmulatedError(404, "global/object-does-not-exist", message, suggestion)


def insufficient_capacity() -> EmulatedError:
    """400: no capacity for this instance type in this region."""
    return EmulatedError(400, "instance-operations/launch/insufficient-capacity",
                         "Not enough capacity to fulfill launch request.",
                         "Choose an instance type with more availability, or try again later.")


def file_system_in_wrong_region(name: str, fs_region: str, region: str) -> EmulatedError:
    """400: a file system to attach lives in another region."""
    return EmulatedError(400, "instance-operations/launch/file-system-in-wrong-region",
                         f"File system '{name}' is in region {fs_region}, not {region}.",
                         "Launch in the file system's region, or attach a file system from this region.")


def quota_exceeded() -> EmulatedError:
    """400: an account quota would be exceeded."""
    return EmulatedError(400, "global/quota-exceeded", "Quota exceeded.", "Contact Support to increase your quota.")


def duplicate(message: str) -> EmulatedError:
    """400: an object with this name already exists."""
    return EmulatedError(400, "global/duplicate", message, "Choose a different name.")


def file_system_in_use(name: str) -> EmulatedError:
    """400: a mounted file system cannot be deleted."""
    return EmulatedError(400, "filesystems/filesystem-in-use", f"Filesystem '{name}' is in use.",
                         "Terminate the instances that use the filesystem, then try again.")


def file_system_not_found() -> EmulatedError:
    """404: no such file system."""
    return EmulatedError(404, "global/object-does-not-exist", "Filesystem was not found.")


def internal_error() -> EmulatedError:
    """500: an internal error."""
    return EmulatedError(500, "global/internal-error", "An internal server error occurred.",
                         "Try again later. Contact Support if the problem persists.")


def retry_after_value(seconds: float, *, whole: bool = True) -> str:
    """A ``Retry-After`` value: whole seconds (HTTP), or milliseconds precision for scaled-down limits."""
    if whole:
        return str(max(1, math.ceil(seconds)))
    return f"{max(0.001, seconds):.3f}"


def rate_limited(retry_after: float, *, whole: bool = True) -> EmulatedError:
    """429: too many requests (Lambda documents the limits, not the body; see docs/lambda.md)."""
    return EmulatedError(429, "global/rate-limited", "Too many requests.",
                         "Slow down: about 1 request per second, and 1 launch per 12 seconds.",
                         headers={"Retry-After": retry_after_value(retry_after, whole=whole)})


def provider_error(code: str = "provider/internal-unavailable", status: int = 503) -> EmulatedError:
    """An upstream (``provider/*``) failure."""
    return EmulatedError(status, code, "Provider unavailable", "Try again shortly")
