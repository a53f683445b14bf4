"""Ending an instance for the user, confirmed or loudly not.

:meth:`Stopper.stop` follows the money rules:

1. the tunnels to the instance are closed (nothing is left pointing at it);
2. the reason (``user``) is written to the ledger BEFORE the terminate call, so
   an unconfirmed terminate is closed with that reason once reconciliation
   sees the instance gone;
3. terminate is sent up to ``stop.attempts`` times; an API error is never
   taken for success;
4. the provider is asked until it reports the instance ``terminated`` (or no
   longer knows it), for up to ``stop.wait_seconds``; ``terminating`` is not
   yet confirmed;
5. only then is the ledger closed with the final cost, a ``terminated`` cost
   event sent, and the SSH host key forgotten (addresses are reused).

The outcome says whether the end was confirmed; the command exits 11 when it
was not.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

from soong.core.errors import ApiNotFoundError, SoongError

GONE = ("terminated", "preempted")


@dataclasses.dataclass
class StopOutcome:
    """What stopping one instance achieved."""

    instance_id: str
    confirmed: bool
    status: str | None = None
    final_cost_usd: float | None = None
    error: str | None = None
    already_closed: bool = False


def close_tunnels(context: Any, instance_id: str) -> list[str]:
    """Close every recorded tunnel to ``instance_id``; the names of the backends that had one."""
    from soong.core.tunnel_state import TunnelStore

    closed = []
    registry = context.plugins.tunnel_backends()
    names = {context.config.get("tunnel.backend")}
    stored = TunnelStore(context.paths.state_dir).load(instance_id)
    if stored is not None:
        names.add(stored.backend)
    for name in sorted(n for n in names if n in registry):
        try:
            if context.tunnel_backend(name).close(instance_id):
                closed.append(name)
        except (SoongError, OSError):
            pass  # a tunnel that cannot be closed must not keep the instance billing
    return closed


def forget_host(context: Any, instance_id: str) -> None:
    """Let every registered tunnel backend forget the ended instance (host keys)."""
    for name in context.plugins.tunnel_backends():
        try:
            context.tunnel_backend(name).forget(instance_id)
        except (SoongError, OSError):
            pass


class Stopper:
    """Terminates instances for the user (see the module docstring).

    :param report: receives one line per notable step (retries, waiting).
    """

    def __init__(self, context: Any, provider: Any, ledger: Any, *, report: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        config = context.config
        self.context = context
        self.provider = provider
        self.ledger = ledger
        self.report = report
        self.clock = clock
        self.sleep = sleep
        self.attempts = int(config.get("stop.attempts"))
        self.wait_seconds = float(config.get("stop.wait_seconds"))
        self.poll = float(config.get("stop.poll_seconds"))

    def _send(self, instance_id: str) -> tuple[bool, str | None]:
        """Send terminate until the provider accepts it; (accepted, last error)."""
        error = None
        for attempt in range(1, self.attempts + 1):
            try:
                after = self.provider.terminate([instance_id])
            except SoongError as exc:
                error = str(exc)
                self.report(f"terminate of {instance_id} failed (attempt {attempt} of {self.attempts}): {exc}")
                if attempt < self.attempts:
                    self.sleep(min(2.0 ** attempt, 10.0) * min(self.poll, 1.0))
                continue
            if not any(i.id == instance_id for i in after or []):
                error = "the provider's answer did not list the instance"
                continue
            return True, None
        return False, error

    def _status(self, instance_id: str) -> str | None:
        """The provider's status of the instance (``gone`` when unknown to it; None when it cannot tell)."""
        try:
            return self.provider.get_instance(instance_id).status
        except ApiNotFoundError:
            return "gone"
        except SoongError:
            return None

    def _wait_gone(self, instance_id: str) -> str | None:
        deadline = self.clock() + self.wait_seconds
        said = False
        while True:
            status = self._status(instance_id)
            if status in GONE or status == "gone":
                return status
            if self.clock() >= deadline:
                return status
            if not said:
                self.report(f"waiting for {instance_id} to be terminated (now {status or 'unknown'})")
                said = True
            self.sleep(self.poll)

    def _report_activity(self, record: Any) -> None:
        """Send the daemon's activity summary to the cost sinks before the instance ends (best effort)."""
        from soong.core.costs import activity_summary_event, emit

        try:
            event = activity_summary_event(self.context, self.provider, record)
            if event is not None:
                emit(self.context, event)
        except Exception as exc:  # nothing about a summary may stand between the user and the terminate
            self.report(f"no activity summary from the daemon of {record.instance_id} ({type(exc).__name__})")

    def stop(self, instance_id: str, *, reason: str = "user") -> StopOutcome:
        """End one instance; the outcome says whether its end is confirmed."""
        record = self.ledger.get(instance_id)
        if record is not None and record.is_open:
            self._report_activity(record)
        close_tunnels(self.context, instance_id)
        if record is not None and record.is_open:
            self.ledger.note_ending(instance_id, reason=reason, at=self.context.clock())
        accepted, error = self._send(instance_id)
        # a refused terminate is checked once (someone else may have ended it), never waited on
        status = self._wait_gone(instance_id) if accepted else self._status(instance_id)
        if status not in GONE and status != "gone":
            why = error or f"the provider still reports it {status or 'unknown'} after {self.wait_seconds:g}s"
            return StopOutcome(instance_id, False, status, error=why)
        outcome = StopOutcome(instance_id, True, status)
        if record is not None:
            now = self.context.clock()
            if self.ledger.record_termination(instance_id, reason=reason, at=now):
                from soong.core.costs import emit, terminated_event

                closed = self.ledger.require(instance_id)
                emit(self.context, terminated_event(closed, now, by="user"))
            else:
                outcome.already_closed = True
            closed = self.ledger.require(instance_id)
            outcome.final_cost_usd = closed.cost_usd(now)
        forget_host(self.context, instance_id)
        return outcome
