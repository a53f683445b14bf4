"""The Lambda Cloud API client: one ``requests.Session``, timeouts, errors by code, careful retries.

Retry rules (tenacity, exponential back-off with jitter: about 1 s, 2 s, 4 s...;
``Retry-After`` honoured; bounded by a total time budget):

* an idempotent call (GET, terminate, rename) is retried on any transient
  failure: connection errors, timeouts, 5xx, 429, ``provider/*`` codes;
* a call that is not idempotent (launch, add key, create/delete file system,
  restart) is retried only when the request certainly did not take effect: the
  connection could not be made, or the API answered 429. A failure after the
  request was sent raises :class:`TransientError` with ``request_sent = True``
  and the caller decides (launch looks the instance up by its unique name);
* permanent errors (401, 403, 404, 400, quota, capacity) fail at once with
  Lambda's message and suggestion.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from typing import Any, Callable

import requests
import tenacity

from soong.core import errors as E
from soong.core.redact import register_secret
from soong.plugins.lambda_cloud.parsing import ResponseShapeError, envelope_data
from soong.plugins.lambda_cloud.ratelimit import RateLimiter

LOG = logging.getLogger(__name__)

#: Lambda error codes and the soong error class each maps to.
CODE_ERRORS: dict[str, type[E.ApiError]] = {
    "global/invalid-api-key": E.AuthError,
    "global/account-inactive": E.PermissionDeniedError,
    "global/invalid-address": E.PermissionDeniedError,
    "global/object-does-not-exist": E.ApiNotFoundError,
    "global/invalid-parameters": E.InvalidRequestError,
    "global/duplicate": E.InvalidRequestError,
    "global/quota-exceeded": E.QuotaExceededError,
    "global/internal-error": E.TransientError,
    "global/rate-limited": E.RateLimitedError,
    "instance-operations/launch/insufficient-capacity": E.CapacityError,
    "instance-operations/launch/file-system-in-wrong-region": E.InvalidRequestError,
    "filesystems/filesystem-in-use": E.InvalidRequestError,
    "firewall-rulesets/firewall-ruleset-in-use": E.InvalidRequestError,
}

#: HTTP statuses and the error class used when the body carries no known code.
STATUS_ERRORS: dict[int, type[E.ApiError]] = {
    400: E.InvalidRequestError,
    401: E.AuthError,
    403: E.PermissionDeniedError,
    404: E.ApiNotFoundError,
    409: E.InvalidRequestError,
    422: E.InvalidRequestError,
    429: E.RateLimitedError,
}


def error_class(status: int, code: str | None) -> type[E.ApiError]:
    """The soong error class for a failed response: by Lambda's code first, then the status."""
    if status == 429:
        return E.RateLimitedError
    if code:
        if code.startswith("provider/"):
            return E.TransientError
        if code in CODE_ERRORS:
            return CODE_ERRORS[code]
    if status >= 500:
        return E.TransientError
    return STATUS_ERRORS.get(status, E.ApiError)


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - now()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def error_from_response(resp: requests.Response) -> E.ApiError:
    """The soong error for a non-2xx response (never includes the API key)."""
    code = message = suggestion = None
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = err.get("code") if isinstance(err.get("code"), str) else None
        message = err.get("message") if isinstance(err.get("message"), str) else None
        suggestion = err.get("suggestion") if isinstance(err.get("suggestion"), str) else None
    cls = error_class(resp.status_code, code)
    if not message:
        reason = resp.reason or "error"
        message = f"Lambda Cloud API answered HTTP {resp.status_code} {reason}"
    exc = cls(message, code=code, suggestion=suggestion, status=resp.status_code,
              retry_after=parse_retry_after(resp.headers.get("Retry-After")))
    exc.request_sent = True  # type: ignore[attr-defined]
    return exc


def _transport_error(exc: requests.RequestException, method: str, path: str) -> E.TransientError:
    """Map a requests failure; ``request_sent`` is False only when no connection was made."""
    import urllib3.exceptions as ux

    sent = True
    if isinstance(exc, requests.ConnectTimeout):
        sent, what = False, "timed out connecting"
    elif isinstance(exc, requests.ReadTimeout):
        what = "timed out waiting for the answer"
    elif isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(reason, (ux.NewConnectionError, ux.ConnectTimeoutError)):
            sent, what = False, "could not connect"
        else:
            what = "lost the connection"
    else:
        what = f"failed ({type(exc).__name__})"
    error = E.TransientError(f"Lambda Cloud API {what} ({method} {path})",
                             code="soong/connection-error" if not sent else "soong/no-answer")
    error.request_sent = sent  # type: ignore[attr-defined]
    return error


class LambdaClient:
    """A client of the Lambda Cloud API v1.

    :param base_url: e.g. ``https://cloud.lambda.ai/api/v1`` (or an emulator's).
    :param api_key: sent as ``Authorization: Bearer``; registered for redaction.
    :param connect_timeout: seconds to open a connection.
    :param read_timeout: seconds to wait for an answer.
    :param limiter: the shared :class:`RateLimiter` (None: no client-side limit).
    :param retry_budget: most seconds spent retrying one call (waits included).
    :param max_attempts: most attempts for one call.
    :param backoff_base: first back-off delay in seconds (then doubled each time).
    :param backoff_max: longest single back-off delay.
    :param sleep: how to wait (tests record the waits).
    """

    def __init__(self, base_url: str, api_key: str, *, connect_timeout: float = 5.0, read_timeout: float = 30.0,
                 limiter: RateLimiter | None = None, retry_budget: float = 60.0, max_attempts: int = 6,
                 backoff_base: float = 1.0, backoff_max: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                 user_agent: str | None = None) -> None:
        from soong import __version__

        register_secret(api_key)
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.limiter = limiter
        self.retry_budget = retry_budget
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.sleep = sleep
        self._random = random.Random()
        self.session = requests.Session()
        self.session.headers.update({
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": user_agent or f"soong/{__version__}",
        })

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    # -- one attempt ---------------------------------------------------------------------------
    def _attempt(self, method: str, path: str, json_body: Any, params: dict[str, Any] | None, launch: bool) -> Any:
        if self.limiter is not None:
            self.limiter.acquire(launch=launch)
        try:
            resp = self.session.request(method, self.base_url + path, json=json_body, params=params,
                                        timeout=self.timeout)
        except requests.RequestException as exc:
            raise _transport_error(exc, method, path) from None
        finally:
            if self.limiter is not None:
                self.limiter.complete(launch=launch)
        if resp.status_code >= 400:
            raise error_from_response(resp)
        try:
            body = resp.json()
        except ValueError:
            raise ResponseShapeError(f"{method} {path} answered {resp.status_code} without JSON") from None
        return envelope_data(body)

    # -- retries ------------------------------------------------------------------------------------
    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        delay = min(self.backoff_max, self.backoff_base * (2 ** (state.attempt_number - 1)))
        delay += self._random.uniform(0, delay * 0.25)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def _stop(self, state: tenacity.RetryCallState, max_attempts: int | None = None) -> bool:
        if state.attempt_number >= min(self.max_attempts, max_attempts or self.max_attempts):
            return True
        elapsed = state.seconds_since_start or 0.0
        return elapsed + self._wait(state) > self.retry_budget

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                idempotent: bool | None = None, launch: bool = False, max_attempts: int | None = None) -> Any:
        """Send one API call (retrying per the rules above); return the ``data`` of the answer.

        ``idempotent`` defaults to True for GET. ``max_attempts`` lowers the client's
        limit for this call (1: no retry, for reads that must not hold anything up).
        Raises a :class:`~soong.core.errors.ApiError` subclass; a
        :class:`TransientError` has ``request_sent`` telling whether the request may
        have reached the API.
        """
        if idempotent is None:
            idempotent = method.upper() == "GET"

        def retryable(exc: BaseException) -> bool:
            if not isinstance(exc, E.TransientError):
                return False
            if idempotent or isinstance(exc, E.RateLimitedError):
                return True
            return getattr(exc, "request_sent", True) is False

        def log_retry(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            LOG.debug("Lambda API %s %s failed (%s); retrying in %.1fs", method, path, exc,
                     state.next_action.sleep if state.next_action else 0)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(retryable), wait=self._wait,
            stop=lambda state: self._stop(state, max_attempts), sleep=self.sleep,
            before_sleep=log_retry, reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._attempt(method, path, json, params, launch)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- endpoints ------------------------------------------------------------------------------------
    def list_instances(self) -> Any:
        """``GET /instances``."""
        return self.request("GET", "/instances")

    def get_instance(self, instance_id: str) -> Any:
        """``GET /instances/{id}``."""
        return self.request("GET", f"/instances/{_segment(instance_id)}")

    def rename_instance(self, instance_id: str, name: str) -> Any:
        """``POST /instances/{id}`` (setting a name is idempotent)."""
        return self.request("POST", f"/instances/{_segment(instance_id)}", json={"name": name}, idempotent=True)

    def list_instance_types(self) -> Any:
        """``GET /instance-types``."""
        return self.request("GET", "/instance-types")

    def launch(self, body: dict[str, Any]) -> Any:
        """``POST /instance-operations/launch`` (never retried after the request may have been sent)."""
        return self.request("POST", "/instance-operations/launch", json=body, idempotent=False, launch=True)

    def terminate(self, instance_ids: list[str]) -> Any:
        """``POST /instance-operations/terminate`` (retried: terminating twice is harmless)."""
        return self.request("POST", "/instance-operations/terminate", json={"instance_ids": instance_ids},
                            idempotent=True)

    def restart(self, instance_ids: list[str]) -> Any:
        """``POST /instance-operations/restart``."""
        return self.request("POST", "/instance-operations/restart", json={"instance_ids": instance_ids},
                            idempotent=False)

    def list_ssh_keys(self) -> Any:
        """``GET /ssh-keys``."""
        return self.request("GET", "/ssh-keys")

    def add_ssh_key(self, name: str, public_key: str | None = None) -> Any:
        """``POST /ssh-keys`` (without a public key Lambda generates a pair)."""
        body: dict[str, Any] = {"name": name}
        if public_key is not None:
            body["public_key"] = public_key
        return self.request("POST", "/ssh-keys", json=body, idempotent=False)

    def delete_ssh_key(self, key_id: str) -> Any:
        """``DELETE /ssh-keys/{id}``."""
        return self.request("DELETE", f"/ssh-keys/{_segment(key_id)}", idempotent=False)

    def list_file_systems(self) -> Any:
        """``GET /file-systems``."""
        return self.request("GET", "/file-systems")

    def create_file_system(self, name: str, region: str) -> Any:
        """``POST /filesystems``."""
        return self.request("POST", "/filesystems", json={"name": name, "region": region}, idempotent=False)

    def delete_file_system(self, fs_id: str) -> Any:
        """``DELETE /filesystems/{id}``."""
        return self.request("DELETE", f"/filesystems/{_segment(fs_id)}", idempotent=False)

    def list_images(self) -> Any:
        """``GET /images``."""
        return self.request("GET", "/images")

    def list_firewall_rulesets(self) -> Any:
        """``GET /firewall-rulesets``."""
        return self.request("GET", "/firewall-rulesets")

    def get_global_firewall(self, *, max_attempts: int | None = None) -> Any:
        """``GET /firewall-rulesets/global`` (OpenAPI v1.8.3 ``getGlobalFirewallRuleset``): a ``GlobalFirewallRuleset``."""
        return self.request("GET", "/firewall-rulesets/global", max_attempts=max_attempts)

    def update_global_firewall(self, rules: list[dict[str, Any]]) -> Any:
        """``PATCH /firewall-rulesets/global`` (OpenAPI v1.8.3 ``updateGlobalFirewallRuleset``).

        The body is a ``GlobalFirewallRulesetPatchRequest``, ``{"rules": [FirewallRule...]}``;
        the answer the ``GlobalFirewallRuleset`` after. Setting the rules is idempotent, so
        it is retried like a GET.
        """
        return self.request("PATCH", "/firewall-rulesets/global", json={"rules": rules}, idempotent=True)

    def audit_events(self, **params: Any) -> Any:
        """``GET /audit-events`` (``start``, ``end``, ``resource_type``, ``page_token``)."""
        return self.request("GET", "/audit-events", params={k: v for k, v in params.items() if v is not None})


def _segment(value: str) -> str:
    """A path segment, refusing anything that could change the path."""
    from urllib.parse import quote

    if not value or "/" in value or value in (".", ".."):
        raise E.InvalidRequestError(f"invalid id {value!r}")
    return quote(value, safe="")
