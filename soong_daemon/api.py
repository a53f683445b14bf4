"""The three Lambda Cloud API calls the daemon makes about its own instance.

``GET /instances`` (find our id by launch name), ``GET /instances/{id}``
(verify) and ``POST /instance-operations/terminate``. The API key is read from
its file for every call (so a fixed key takes effect without a restart) and is
never part of a message. Calls are spaced at least ``min_interval`` seconds
apart (Lambda allows about one request per second), and a 429's
``Retry-After`` is passed on to the caller. Every answer's ``Date`` header is
kept as the provider's clock (``clock_offset``), which settles clock skew
(``soong_daemon.skew``).
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from typing import Any, Callable
from urllib.parse import quote

import requests

log = logging.getLogger("soong_daemon.api")

TIMEOUT = (5.0, 20.0)
GONE_STATUSES = frozenset({"terminating", "terminated"})
NOT_FOUND_CODE = "global/object-does-not-exist"


class ApiError(Exception):
    """A failed API call: HTTP status (None for a network error), Lambda's error code and message."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class LambdaApi:
    """A minimal client for the instance endpoints of the Lambda Cloud API."""

    def __init__(self, base_url: str, api_key: Callable[[], str], *, timeout: Any = TIMEOUT,
                 min_interval: float = 1.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self.min_interval = min_interval
        self._pace_lock = threading.Lock()
        self._last_call = -float("inf")
        self._retry_after: float | None = None
        #: The provider's clock minus this machine's, from the latest answer with a Date header (None: none yet).
        self.server_offset: float | None = None

    def _pace(self) -> None:
        with self._pace_lock:
            wait = self._last_call + self.min_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_call = time.monotonic()

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        try:
            key = self._api_key()
        except Exception as exc:
            raise ApiError(f"cannot read the API key: {exc}") from None
        headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
        self._pace()
        sent = time.time()
        try:
            response = requests.request(method, self.base_url + path, json=body, headers=headers,
                                        timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise ApiError(f"{method} {path}: network error ({exc.__class__.__name__})") from None
        self._note_server_time(response.headers.get("Date"), sent, time.time())
        self._retry_after = _seconds(response.headers.get("Retry-After"))
        try:
            payload = response.json()
        except ValueError:
            payload = None
        return response.status_code, payload

    def _note_server_time(self, date: str | None, sent: float, received: float) -> None:
        """Keep the provider's clock offset from an answer's ``Date`` (whole seconds, so it is stamped mid-second).

        An origin server with a clock must send ``Date`` on every 2xx, 3xx and 4xx
        answer (RFC 9110, section 6.6.1; RFC 2616 section 14.18 before it); its
        format is an IMF-fixdate, which ``email.utils.parsedate_to_datetime`` reads.
        """
        if not date:
            return
        try:
            moment = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            return
        if moment is None or moment.tzinfo is None:
            return
        self.server_offset = moment.timestamp() + 0.5 - (sent + received) / 2

    def clock_offset(self) -> float | None:
        """The provider's clock minus this machine's: from the latest answer, else from one ``GET /instances``."""
        if self.server_offset is None:
            try:
                self.list_instances()
            except ApiError:
                pass  # an error answer carries a Date too; a network error leaves None
        return self.server_offset

    def _error(self, method: str, path: str, status: int, payload: Any) -> ApiError:
        error = payload.get("error") if isinstance(payload, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        detail = f"{code}: {message}" if code else "no error details"
        return ApiError(f"{method} {path}: HTTP {status} ({str(detail)[:200]})", status=status, code=code,
                        retry_after=self._retry_after if status in (429, 503) else None)

    def list_instances(self) -> list[dict]:
        """All running instances of the account."""
        status, payload = self._request("GET", "/instances")
        if status != 200 or not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            raise self._error("GET", "/instances", status, payload)
        return [item for item in payload["data"] if isinstance(item, dict)]

    def get_instance(self, instance_id: str) -> dict | None:
        """The instance, or None if the API says (with its own error body) that it does not exist."""
        path = f"/instances/{quote(instance_id, safe='')}"
        status, payload = self._request("GET", path)
        if status == 200 and isinstance(payload, dict) and isinstance(payload.get("data"), dict):
            return payload["data"]
        error = payload.get("error") if isinstance(payload, dict) else None
        if status == 404 and isinstance(error, dict) and error.get("code") == NOT_FOUND_CODE:
            return None
        raise self._error("GET", path, status, payload)

    def terminate(self, instance_id: str) -> list[dict]:
        """Ask the API to terminate the instance; return the instances it reports."""
        path = "/instance-operations/terminate"
        status, payload = self._request("POST", path, {"instance_ids": [instance_id]})
        data = payload.get("data") if isinstance(payload, dict) else None
        if status == 200 and isinstance(data, dict) and isinstance(data.get("terminated_instances"), list):
            return data["terminated_instances"]
        raise self._error("POST", path, status, payload)

    def find_instance_id(self, name: str) -> str | None:
        """The id of the one instance called ``name``; None if there is none; ApiError if several."""
        matches = [item.get("id") for item in self.list_instances() if item.get("name") == name and item.get("id")]
        if len(matches) > 1:
            raise ApiError(f"{len(matches)} instances are called {name!r}; refusing to guess which one is this machine")
        return matches[0] if matches else None

    def is_gone(self, instance_id: str) -> tuple[bool, str]:
        """Whether the instance is terminating or terminated (or no longer exists), and its status.

        A 404 alone is not trusted (a wrong base URL answers 404 too): the
        instance list must also load and no longer hold the id.
        """
        instance = self.get_instance(instance_id)
        if instance is None:
            if any(item.get("id") == instance_id for item in self.list_instances()):
                return False, "listed although GET /instances/{id} says not found"
            return True, "not found"
        status = str(instance.get("status", "unknown"))
        return status in GONE_STATUSES, status


def _seconds(value: str | None) -> float | None:
    """A Retry-After given in seconds (an HTTP date is ignored); capped at ten minutes."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), 600.0) if seconds == seconds else None
