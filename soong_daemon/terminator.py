"""Ending this instance through the provider API, and not stopping until the API confirms it.

Lambda bills until an instance is terminated through the API; powering off does
not stop the bill. So each attempt asks the API to terminate, then verifies with
``GET /instances/{id}`` (404 from the API, or status terminating/terminated). An
API error is never taken for success. Failed attempts are retried with
exponential backoff for as long as it takes, each failure logged. Only after
``poweroff_after`` seconds of failures does it power the machine off, as a
last resort, logging loudly that billing may continue; it keeps retrying the
API call afterwards for as long as the machine runs.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import subprocess
import threading
import time
from typing import Callable, Sequence

from soong_daemon.api import ApiError, LambdaApi

log = logging.getLogger("soong_daemon.terminator")


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: ``initial`` doubling up to ``maximum`` seconds."""

    initial: float = 2.0
    maximum: float = 60.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.maximum, self.initial * 2 ** min(attempt - 1, 32))
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)


class PowerOff:
    """Runs the configured power-off command (the last resort); an empty command does nothing."""

    def __init__(self, command: Sequence[str]) -> None:
        self.command = tuple(command)

    def __call__(self) -> bool:
        """Run the command; True if it succeeded."""
        if not self.command:
            log.critical("power-off is disabled in the configuration; the instance keeps running and billing")
            return False
        try:
            result = subprocess.run(self.command, timeout=120, check=False, capture_output=True)
        except (OSError, subprocess.SubprocessError) as exc:
            log.critical("power-off command failed to run: %s", exc.__class__.__name__)
            return False
        if result.returncode != 0:
            log.critical("power-off command exited with status %s", result.returncode)
        return result.returncode == 0


@dataclasses.dataclass
class TerminationResult:
    """How a termination ended: ``verified`` (the API confirmed it) or ``interrupted`` (the daemon is stopping)."""

    outcome: str
    attempts: int
    instance_status: str | None = None
    last_error: str | None = None
    powered_off: bool = False


class Terminator:
    """Terminates this instance through the API with retries, verification and a loud last resort."""

    def __init__(self, api: LambdaApi, *, power_off: Callable[[], bool] | None = None, poweroff_after: float = 3600.0,
                 backoff: Backoff = Backoff(), sleep: Callable[[float], None] | None = None,
                 monotonic: Callable[[], float] = time.monotonic, stop: threading.Event | None = None) -> None:
        self.api = api
        self.power_off = power_off
        self.poweroff_after = poweroff_after
        self.backoff = backoff
        self.stop = stop or threading.Event()
        self._sleep = sleep or self.stop.wait
        self._monotonic = monotonic
        self._retry_after: float | None = None

    def attempt(self, instance_id: str) -> tuple[bool, str, str | None]:
        """One terminate request plus verification: (gone, instance status, error or None)."""
        error = None
        try:
            self.api.terminate(instance_id)
        except ApiError as exc:
            error = str(exc)  # maybe already gone: the verification decides
            self._retry_after = exc.retry_after
        try:
            gone, status = self.api.is_gone(instance_id)
        except ApiError as exc:
            self._retry_after = max(self._retry_after or 0.0, exc.retry_after or 0.0) or None
            return False, "unknown", error or str(exc)
        if gone:
            return True, status, None
        return False, status, error or f"instance still {status} after the terminate request"

    def terminate(self, resolve_id: Callable[[], str | None],
                  progress: Callable[[TerminationResult], None] = lambda result: None) -> TerminationResult:
        """Keep trying until the API confirms the instance is gone, or ``stop`` is set.

        ``resolve_id`` gives this instance's id (it may need an API lookup and may
        raise ApiError); ``progress`` is told about every attempt.
        """
        started = self._monotonic()
        result = TerminationResult("retrying", 0)
        power_off_tried = False
        while not self.stop.is_set():
            result.attempts += 1
            self._retry_after = None
            try:
                instance_id = resolve_id()
            except ApiError as exc:
                instance_id, result.last_error = None, f"cannot find this instance's id: {exc}"
                self._retry_after = exc.retry_after
            else:
                result.last_error = None if instance_id else "this instance's id is not known yet"
            if instance_id:
                gone, result.instance_status, result.last_error = self.attempt(instance_id)
                if gone:
                    result.outcome = "verified"
                    log.warning("instance %s is %s: termination confirmed by the API after %d attempt(s)",
                                instance_id, result.instance_status, result.attempts)
                    _report(progress, result)
                    return result
            log.error("terminate attempt %d failed: %s; the instance is still billing, retrying",
                      result.attempts, result.last_error)
            _report(progress, result)
            failing_for = self._monotonic() - started
            if (not power_off_tried and self.power_off is not None and self.poweroff_after > 0
                    and failing_for >= self.poweroff_after):
                log.critical("TERMINATE STILL FAILING AFTER %d ATTEMPTS OVER %.0f S: POWERING OFF AS A LAST RESORT. "
                             "BILLING MAY CONTINUE UNTIL THE INSTANCE IS TERMINATED THROUGH THE API "
                             "(soong stop / the Lambda dashboard).", result.attempts, failing_for)
                power_off_tried = True
                result.powered_off = self.power_off()
                _report(progress, result)
            self._sleep(max(self.backoff.delay(result.attempts), self._retry_after or 0.0))
        result.outcome = "interrupted"
        log.critical("termination interrupted after %d attempt(s) because the daemon is stopping; the instance "
                     "may still be billing (last error: %s)", result.attempts, result.last_error)
        _report(progress, result)
        return result


def _report(progress: Callable[[TerminationResult], None], result: TerminationResult) -> None:
    """Tell ``progress``; a failure there (say, a full disk) must never stop the termination."""
    try:
        progress(result)
    except Exception:
        log.exception("could not record the termination progress; carrying on")
