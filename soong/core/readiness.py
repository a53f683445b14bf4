"""Waiting for a new instance to serve its model.

The steps, each seen from this machine:

``booting``
    the provider reports the instance booting (or it has no address yet);
``active``
    the provider reports it active; soong now tries to reach its status daemon;
``daemon``
    the daemon answers ``GET /status`` through the tunnel backend;
``loading``
    the bootstrap reports SGLang installing or loading the weights (the
    daemon's boot phases);
``ready``
    SGLang itself answers ``GET /health`` with 200 through the tunnel, and
    ``GET /v1/models`` with 200 to this instance's API key (so the key soong
    shows works; or, with ``services.sglang`` off, the daemon answers).

As soon as the daemon answers, the probe's courier (when given) delivers the
secrets the daemon says the instance lacks (the Hugging Face token for a gated
model; the Lambda API key with ``secrets.api_key_delivery: ssh``), see
:mod:`soong.core.secret_delivery`.

:func:`wait_until_ready` polls every ``start.poll_seconds`` until ``ready``,
raising :class:`ReadyTimeout` after the timeout (:func:`ready_timeout_seconds`:
12 minutes plus 2 per GPU, since large multi-GPU nodes boot and load for 25
minutes and more) and :class:`InstanceFailed` when the instance ends, the
daemon decides to shut it down, or a service reports ``<name>-failed``. A
failed preflight (the bootstrap's first check of the machine, reported by the
daemon right after it comes up) is :class:`PreflightFailed`, with its own exit
code and the boot log's one-line reason. Clock
and sleep are injectable, and the probe is an object with two methods, so the
loop is tested without waiting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from typing import Any, Callable, Mapping

from soong.core.errors import EXIT_PREFLIGHT, ApiError, ApiNotFoundError, SoongError, UnreachableError

PHASES = ("booting", "active", "daemon", "loading", "ready")
LABELS = {
    "booting": "booting",
    "active": "active",
    "daemon": "daemon healthy",
    "loading": "model loading",
    "ready": "SGLang ready",
}
#: Boot-log phases that mean SGLang is on its way.
LOADING_PHASES = ("sglang-installing", "sglang-loading")
ENDED_STATUSES = ("terminating", "terminated", "preempted")


class InstanceFailed(SoongError):
    """The instance can no longer become ready (it ended, is shutting down, or a service failed)."""


class PreflightFailed(InstanceFailed):
    """The instance failed its preflight checks: it can serve nothing and its daemon terminates it after a grace."""

    exit_code = EXIT_PREFLIGHT


class ReadyTimeout(UnreachableError):
    """The instance was not ready in time; ``progress`` is the last thing seen."""

    def __init__(self, message: str, progress: "Progress") -> None:
        super().__init__(message)
        self.progress = progress


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where a waiting instance is now."""

    phase: str
    elapsed: float
    instance: Any = None
    daemon_phase: str | None = None
    detail: str = ""

    @property
    def label(self) -> str:
        """The phase in words."""
        return LABELS.get(self.phase, self.phase)


def ready_timeout_seconds(config: Any, gpu_count: int) -> float:
    """``start.ready_timeout_minutes``, or 12 minutes plus 2 per GPU."""
    configured = config.get("start.ready_timeout_minutes")
    minutes = configured if configured is not None else 12 + 2 * max(gpu_count, 1)
    return float(minutes) * 60.0


def sglang_state(status: Mapping[str, Any] | None) -> str | None:
    """SGLang's state from a daemon ``/status``: the latest ``sglang-*`` boot phase without the prefix."""
    if not status:
        return None
    phases = (status.get("boot") or {}).get("phases") or []
    for entry in reversed(phases):
        name = str(entry.get("phase", "")) if isinstance(entry, Mapping) else ""
        if name.startswith("sglang-"):
            return name[len("sglang-"):]
    return None


def _minutes_between(start: Any, end: Any) -> float | None:
    import datetime as _dt

    try:
        first = _dt.datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        second = _dt.datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (second - first).total_seconds() / 60


def preflight_failure(status: Mapping[str, Any] | None, instance_id: str) -> PreflightFailed | None:
    """The :class:`PreflightFailed` a daemon ``/status`` reports, or None while the preflight passed or has not run.

    The reason is the boot log's line (``status["preflight"]``, or the
    ``preflight-failed`` phase itself); the hint says when the daemon ends the
    instance (``terminate_at`` against the daemon's ``now``).
    """
    if not status:
        return None
    preflight = status.get("preflight") if isinstance(status.get("preflight"), Mapping) else None
    reason = None
    if preflight and preflight.get("status") == "failed":
        reason = preflight.get("reason")
    if reason is None:
        for entry in (status.get("boot") or {}).get("phases") or []:
            if isinstance(entry, Mapping) and entry.get("phase") == "preflight-failed":
                reason = entry.get("message")
                break
        else:
            return None
    minutes = _minutes_between(status.get("now"), (preflight or {}).get("terminate_at"))
    if status.get("shutdown") or (minutes is not None and minutes <= 0):
        when = "the instance is terminating itself now"
    elif minutes is None:
        when = "the instance terminates itself after a grace period"
    else:
        whole = max(1, math.ceil(minutes - 1e-9))
        when = f"the instance terminates itself in {whole} minute{'s' if whole != 1 else ''}"
    return PreflightFailed(f"instance {instance_id} failed its preflight checks: {reason or 'no reason given'}",
                           hint=f"{when}; 'soong stop' ends it now")


def _failed_phase(status: Mapping[str, Any]) -> str | None:
    phases = (status.get("boot") or {}).get("phases") or []
    latest: dict[str, str] = {}
    for entry in phases:
        if isinstance(entry, Mapping):
            name = str(entry.get("phase", ""))
            latest[name.split("-")[0]] = name
    for service in ("daemon", "sglang"):
        if latest.get(service, "").endswith("-failed"):
            return latest[service]
    return None


class SglangKeyRefused(InstanceFailed):
    """SGLang answers, but refuses the API key soong computes for the instance."""


class TunnelProbe:
    """Reaches an instance's daemon and SGLang through one foreground tunnel, kept open between checks.

    :param courier: a :class:`~soong.core.secret_delivery.SecretCourier` that delivers
        what the daemon says is missing, each time its status is read (None: nothing).
    """

    def __init__(self, context: Any, *, sglang: bool = True, timeout: tuple[float, float] = (2.0, 4.0),
                 courier: Any = None) -> None:
        self.context = context
        self.sglang = sglang
        self.timeout = timeout
        self.courier = courier
        self._stack: contextlib.ExitStack | None = None
        self._endpoints: dict[str, str] = {}
        self._token: str | None = None
        self._api_key: str | None = None

    def _open(self, instance: Any) -> dict[str, str]:
        from soong.core.tunnel_state import target_for
        from soong.core.types import Forward

        if self._stack is not None:
            return self._endpoints
        if self._token is None:
            self._token = self.context.secrets.require("daemon_token")
        forwards = [Forward("status", 0, int(self.context.config.get("status_daemon.port")))]
        if self.sglang:
            from soong.core.bootstrap import SGLANG_PORT

            forwards.append(Forward("sglang", 0, SGLANG_PORT))
        target = target_for(self.context, instance)
        stack = contextlib.ExitStack()
        try:
            opened = stack.enter_context(self.context.tunnel_backend().open(target, forwards))
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        self._endpoints = {f.name: f"http://{f.local_host}:{f.local_port}" for f in opened}
        return self._endpoints

    def close(self) -> None:
        """Close the tunnel (it is reopened on the next check)."""
        if self._stack is not None:
            stack, self._stack = self._stack, None
            stack.close()

    def daemon_status(self, instance: Any) -> dict[str, Any] | None:
        """The daemon's ``/status``, or None while it cannot be reached."""
        from soong.core.daemon_client import DaemonClient

        try:
            endpoints = self._open(instance)
        except (SoongError, OSError):
            return None
        with DaemonClient(endpoints["status"], self._token or "", timeout=self.timeout,
                          label=f"instance {instance.id}") as client:
            try:
                status = client.status()
            except UnreachableError:
                self.close()  # the tunnel may be what broke; open it again next time
                return None
        if self.courier is not None:
            self.courier.deliver(instance, status)
        return status

    def sglang_ready(self, instance: Any) -> bool:
        """True when SGLang answers ``GET /health`` and, with the instance's API key, ``GET /v1/models``.

        Raises :class:`SglangKeyRefused` when SGLang answers 401 to the key (waiting
        would not change that). SGLang 0.5.23 lets ``/health*``, ``/ready*`` and
        ``/metrics*`` through without a key and asks every other route for ``Authorization:
        Bearer <key>`` (``decide_request_auth``, sglang/srt/utils/auth.py).
        """
        import requests

        from soong.core.instance_keys import sglang_api_key_for

        url = self._endpoints.get("sglang")
        if not url:
            return False
        if self._api_key is None:
            self._api_key = sglang_api_key_for(self.context, instance)
        session = requests.Session()
        session.trust_env = False
        try:
            if session.get(url + "/health", timeout=self.timeout).status_code != 200:
                return False
            models = session.get(url + "/v1/models", timeout=self.timeout,
                                 headers={"Authorization": f"Bearer {self._api_key}"})
        except requests.RequestException:
            return False
        finally:
            session.close()
        if models.status_code == 401:
            raise SglangKeyRefused(f"SGLang on instance {instance.id} refuses the API key soong computes for it",
                                   hint="the daemon_token in this profile is not the one the instance was launched with")
        return models.status_code == 200


def check_once(provider: Any, instance_id: str, probe: Any, *, elapsed: float, sglang: bool) -> Progress:
    """One look at the instance; raises :class:`InstanceFailed` when it can no longer get ready."""
    try:
        instance = provider.get_instance(instance_id)
    except ApiNotFoundError:
        raise InstanceFailed(f"instance {instance_id} no longer exists; it will not become ready") from None
    except ApiError as exc:
        if not exc.retryable:
            raise InstanceFailed(f"instance {instance_id} cannot be read: {exc}") from None
        return Progress("booting", elapsed, detail=f"the provider did not answer ({exc})")
    if instance.status in ENDED_STATUSES:
        raise InstanceFailed(f"instance {instance_id} is {instance.status}; it will not become ready")
    if instance.status == "booting" or not instance.ip:
        return Progress("booting", elapsed, instance)
    status = probe.daemon_status(instance)
    detail = "the provider reports it unhealthy" if instance.status == "unhealthy" else ""
    if status is None:
        return Progress("active", elapsed, instance, detail=detail or "waiting for the status daemon")
    daemon_phase = (status.get("boot") or {}).get("phase")
    failed_preflight = preflight_failure(status, instance_id)
    if failed_preflight is not None:
        raise failed_preflight
    shutdown = status.get("shutdown")
    if shutdown:
        raise InstanceFailed(f"the instance's daemon is shutting it down ({shutdown.get('reason')}: {shutdown.get('detail')})")
    failed = _failed_phase(status)
    if failed:
        raise InstanceFailed(f"the bootstrap reports {failed} on instance {instance_id}",
                             hint=f"look with 'soong ssh --instance-id {instance_id} -- tail -n 50 /var/log/soong-boot.log'")
    if not sglang or probe.sglang_ready(instance):
        return Progress("ready", elapsed, instance, daemon_phase)
    state = sglang_state(status)
    phase = "loading" if state in ("installing", "loading") else "daemon"
    if state == "waiting-token" and not detail:
        detail = "SGLang waits for the Hugging Face token"
    return Progress(phase, elapsed, instance, daemon_phase, detail)


def _duration(seconds: float) -> str:
    import datetime as _dt

    from soong.core.durations import format_duration

    return format_duration(_dt.timedelta(seconds=round(seconds)))


def wait_until_ready(provider: Any, instance_id: str, probe: Any, *, timeout: float, poll: float,
                     on_progress: Callable[[Progress], None], sglang: bool = True,
                     clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                     started: float | None = None) -> Progress:
    """Poll until the instance is ready (see the module docstring); return the last progress."""
    start = clock() if started is None else started
    while True:
        progress = check_once(provider, instance_id, probe, elapsed=clock() - start, sglang=sglang)
        on_progress(progress)
        if progress.phase == "ready":
            return progress
        if clock() - start >= timeout:
            raise ReadyTimeout(f"instance {instance_id} was not ready after {_duration(timeout)} "
                               f"(last: {progress.label}{', ' + progress.daemon_phase if progress.daemon_phase else ''})",
                               progress)
        sleep(poll)
