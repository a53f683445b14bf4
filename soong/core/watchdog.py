"""The watchdog on the user's machine: terminate what soong launched once it must end.

It does not depend on the instance: even if the daemon on the GPU died, the
watchdog ends the instance from here. For every instance in the ledger that
the provider still lists as billing, one pass (:meth:`Watchdog.run_once`)
decides:

* **hard limit** passed (from the ledger) -> terminate, reason ``hard_limit``;
* a termination was requested earlier but not confirmed -> terminate again;
* **lease over** and the daemon has not answered ``GET /health`` for
  ``watchdog.unreachable_minutes`` -> terminate, reason ``watchdog``
  (unreachable time counts from the first failed probe after the lease ended);
* otherwise leave it alone.

Instances soong did not launch are never touched; with ``include_untracked``
they are adopted first (their lease and hard limit counting from that moment)
and then follow the same rules. Before each terminate the reason is written to
the ledger; the ledger is closed only once the provider confirms the instance
is gone, and an API error is never taken for success. A pass holds an exclusive
lock, so two passes at once act once (the second one skips), and every ledger
change is conditional, so a pass racing ``soong stop`` closes the record once.
Every action is appended to ``<state>/watchdog/actions.jsonl`` and terminations
are sent to the cost sinks; the last pass is summarised in ``last-run.json``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

from soong.core.atomic import write_private
from soong.core.errors import ApiNotFoundError, SoongError
from soong.core.jsonl import append_json_line, locked, read_json_lines
from soong.core.ledger import Ledger, LedgerRecord
from soong.core.reconcile import GONE_STATUSES, adopt_instance, provider_confirm_gone, reconcile, release_local_state
from soong.core.types import Instance

LOG = logging.getLogger(__name__)
WATCHDOG_DIR = "watchdog"

#: ``probe(record, instance) -> bool``: does the instance's daemon answer now?
Probe = Callable[[LedgerRecord, Instance], bool]


@dataclasses.dataclass
class Action:
    """One thing the watchdog did or decided (``action``: terminated, terminate-failed, ...)."""

    at: str
    instance_id: str
    action: str
    reason: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class RunReport:
    """The outcome of one watchdog pass."""

    started_at: str
    finished_at: str | None = None
    skipped: bool = False
    checked: int = 0
    actions: list[Action] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    unconfirmed: list[str] = dataclasses.field(default_factory=list)
    untracked: list[str] = dataclasses.field(default_factory=list)
    #: the exit code of each error (as the error that caused it would have exited).
    error_codes: list[int] = dataclasses.field(default_factory=list)

    def add_error(self, message: str, exc: BaseException | None = None) -> None:
        """Record an error and the exit code it stands for."""
        self.errors.append(message)
        self.error_codes.append(int(getattr(exc, "exit_code", 1) or 1))

    @property
    def terminated(self) -> list[str]:
        """Instance ids this pass terminated (confirmed)."""
        return [a.instance_id for a in self.actions if a.action == "terminated"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (what ``last-run.json`` holds)."""
        data = dataclasses.asdict(self)
        data["actions"] = [a.to_dict() for a in self.actions]
        return data


def http_health(host: str, port: int, *, timeout: float = 5.0) -> bool:
    """True when ``GET http://host:port/health`` answers 200 within ``timeout`` (no proxy)."""
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class TunnelHealthProbe:
    """The default probe: open the configured tunnel backend to the daemon port and GET /health.

    Any failure (no address yet, tunnel refused, timeout, non-200) counts as unreachable.
    """

    def __init__(self, context: Any, *, timeout: float = 5.0) -> None:
        self.context = context
        self.timeout = timeout

    def __call__(self, record: LedgerRecord, instance: Instance) -> bool:
        from soong.core.tunnel_state import target_for
        from soong.core.types import Forward

        if not instance.ip:
            return False
        remote_port = self.context.config.get("status_daemon.port")
        try:
            backend = self.context.tunnel_backend()
            target = target_for(self.context, instance, self.context.provider(record.provider))
            with backend.open(target, [Forward("status", 0, remote_port)]) as forwards:
                return http_health(forwards[0].local_host, forwards[0].local_port, timeout=self.timeout)
        except Exception as exc:  # unreachable, whatever the reason
            LOG.debug("probe of %s failed: %s", instance.id, exc)
            return False


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the rules say about one instance now (see :func:`decide`)."""

    terminate: bool
    reason: str | None = None
    why: str = ""
    #: the daemon-unreachable mark to keep (None: cleared).
    unreachable_since: _dt.datetime | None = None
    #: an action worth logging when not terminating (``daemon-unreachable``, ``daemon-reachable``).
    note: str | None = None
    probed: bool = False


def decide(record: LedgerRecord, now: _dt.datetime, *, unreachable: _dt.timedelta, probe: Callable[[], bool]) -> Decision:
    """The watchdog's rules for one billing instance soong tracks (pure, apart from calling ``probe``).

    ``probe`` is called only when the lease is over and the hard limit is not.
    """
    since = record.daemon_unreachable_since
    if now >= record.hard_limit_at:
        return Decision(True, "hard_limit", f"hard limit passed at {_iso(record.hard_limit_at)}", since)
    if record.end_requested_at is not None:
        return Decision(True, record.end_requested_reason or "watchdog",
                        f"termination requested at {_iso(record.end_requested_at)} was not confirmed", since)
    if now < record.lease_ends_at:
        return Decision(False, why="within its lease")  # a lease extended since an old mark restarts the count
    if probe():
        note = "daemon-reachable" if since is not None else None
        return Decision(False, why="the daemon answers", note=note, probed=True)
    if since is None:
        return Decision(False, why=f"lease over and the daemon does not answer; terminating after {unreachable} unless it answers",
                        unreachable_since=now, note="daemon-unreachable", probed=True)
    if now - since >= unreachable:
        return Decision(True, "watchdog", f"lease ended at {_iso(record.lease_ends_at)} and the daemon has not answered "
                        f"since {_iso(since)}", since, probed=True)
    return Decision(False, why=f"the daemon has not answered since {_iso(since)}", unreachable_since=since, probed=True)


def _iso(moment: _dt.datetime) -> str:
    return moment.astimezone(_dt.timezone.utc).isoformat(timespec="seconds")


class Watchdog:
    """One profile's watchdog (see the module docstring for the rules).

    Everything it touches can be injected: ``ledger``, ``provider`` (default
    ``context.provider(provider_name)``), ``probe``, ``emitter``, ``state_dir``, and
    ``sleep`` with ``confirm_attempts``/``confirm_delay`` for confirming a terminate.
    """

    def __init__(self, context: Any, *, ledger: Ledger | None = None, provider: Any = None, probe: Probe | None = None,
                 emitter: Any = None, include_untracked: bool = False, provider_name: str = "lambda",
                 state_dir: Path | None = None, confirm_attempts: int = 10, confirm_delay: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.context = context
        self.ledger = ledger or Ledger.for_context(context)
        self._provider = provider
        self.provider_name = provider_name
        self.probe = probe or TunnelHealthProbe(context)
        self._emitter = emitter
        self.include_untracked = include_untracked
        self.state_dir = Path(state_dir) if state_dir else context.paths.state_dir / WATCHDOG_DIR
        self.confirm_attempts = confirm_attempts
        self.confirm_delay = confirm_delay
        self.sleep = sleep
        self.unreachable = _dt.timedelta(minutes=context.config.get("watchdog.unreachable_minutes"))

    @property
    def provider(self) -> Any:
        """The provider whose instances are watched."""
        if self._provider is None:
            self._provider = self.context.provider(self.provider_name)
        return self._provider

    @property
    def emitter(self) -> Any:
        """Where cost events go."""
        if self._emitter is None:
            from soong.core.costs import emitter_for

            self._emitter = emitter_for(self.context)
        return self._emitter

    @property
    def lock_path(self) -> Path:
        """The lock one pass holds."""
        return self.state_dir / "run.lock"

    @property
    def actions_path(self) -> Path:
        """The append-only log of actions."""
        return self.state_dir / "actions.jsonl"

    @property
    def status_path(self) -> Path:
        """The summary of the last pass."""
        return self.state_dir / "last-run.json"

    # -- one pass ---------------------------------------------------------------------------------
    def run_once(self) -> RunReport:
        """One pass over every instance; returns what it did (``skipped`` if another pass runs)."""
        report = RunReport(started_at=_iso(self.context.clock()))
        with locked(self.lock_path, blocking=False) as mine:
            if not mine:
                report.skipped = True
                report.finished_at = _iso(self.context.clock())
                return report
            try:
                self._pass(report)
            finally:
                report.finished_at = _iso(self.context.clock())
                write_private(self.status_path, json.dumps(report.to_dict(), indent=2, sort_keys=True))
        return report

    def _pass(self, report: RunReport) -> None:
        now = self.context.clock()
        try:
            live = self.provider.list_instances()
        except Exception as exc:
            report.add_error(f"could not list instances: {exc}", exc)
            return
        rec = reconcile(self.ledger, live, now=now, provider=self.provider_name,
                        confirm_gone=provider_confirm_gone(self.provider))
        release_local_state(self.context, rec.closed)
        for record in rec.closed:
            self._act(report, record.instance_id or record.launch_name, "closed-gone", record.end_reason,
                      "the provider no longer lists it; closed in the ledger")
            self._emit_terminated(record, by="watchdog")
        for record in rec.attached:
            self._act(report, record.instance_id or record.launch_name, "attached", None,
                      f"launch '{record.launch_name}' matched to its instance by name")
        tracked = list(rec.tracked)
        for inst in rec.untracked:
            if not self.include_untracked:
                report.untracked.append(inst.id)
                continue
            try:
                record = adopt_instance(self.ledger, inst, now=now, lease_hours=self.context.config.get("defaults.lease_hours"),
                                        hard_limit_hours=self.context.config.get("defaults.hard_limit_hours"))
            except SoongError as exc:
                report.add_error(f"could not adopt {inst.id}: {exc}", exc)
                continue
            self._act(report, inst.id, "adopted", None,
                      f"untracked instance now watched; hard limit {_iso(record.hard_limit_at)}")
            from soong.core.costs import launched_event

            self._send(launched_event(record, now))
            tracked.append((record, inst))
        report.checked = len(tracked)
        from soong.core.costs import accrued_event

        for record, inst in tracked:
            self._send(accrued_event(record, now))  # a cost-so-far snapshot every pass
            try:
                self._decide_and_act(report, self.ledger.require(record.instance_id), inst, now)  # type: ignore[arg-type]
            except SoongError as exc:
                report.add_error(f"{inst.id}: {exc}", exc)
        for record, inst in rec.lingering:
            self._terminate(report, record, inst, record.end_reason or "watchdog", close=False,
                            why="the ledger says it ended but the provider still lists it as running")

    def _decide_and_act(self, report: RunReport, record: LedgerRecord, inst: Instance, now: _dt.datetime) -> None:
        decision = decide(record, now, unreachable=self.unreachable, probe=lambda: self.probe(record, inst))
        if decision.unreachable_since != record.daemon_unreachable_since:
            self.ledger.set_daemon_unreachable(inst.id, None)
            if decision.unreachable_since is not None:
                self.ledger.set_daemon_unreachable(inst.id, decision.unreachable_since)
        if decision.terminate:
            self._terminate(report, record, inst, decision.reason or "watchdog", why=decision.why)
        elif decision.note:
            self._act(report, inst.id, decision.note, None, decision.why)

    def _terminate(self, report: RunReport, record: LedgerRecord, inst: Instance, reason: str, *, why: str,
                   close: bool = True) -> None:
        instance_id = inst.id
        if close:
            self.ledger.note_ending(instance_id, reason=reason, at=self.context.clock())
        try:
            after = self.provider.terminate([instance_id])
        except Exception as exc:  # never taken for success
            report.add_error(f"terminate {instance_id} failed: {exc}", exc)
            self._act(report, instance_id, "terminate-failed", reason, f"{why}; the provider answered: {exc}")
            return
        if not self._confirmed(instance_id, after):
            report.unconfirmed.append(instance_id)
            self._act(report, instance_id, "terminate-requested", reason,
                      f"{why}; the provider accepted but has not confirmed yet (checked again next run)")
            return
        if not close:
            self._act(report, instance_id, "terminated", reason, why)
            return
        if self.ledger.record_termination(instance_id, reason=reason, at=self.context.clock()):
            closed = self.ledger.require(instance_id)
            self._act(report, instance_id, "terminated", reason, f"{why}; final cost ${closed.cost_usd(closed.end_or(self.context.clock())):.2f}")
            self._emit_terminated(closed, by="watchdog")
        else:
            self._act(report, instance_id, "already-ended", reason, f"{why}; another soong process closed it first")

    def _confirmed(self, instance_id: str, after: list[Instance]) -> bool:
        if any(i.id == instance_id and i.status in GONE_STATUSES for i in after or []):
            return True
        for attempt in range(self.confirm_attempts):
            if attempt:
                self.sleep(self.confirm_delay)
            try:
                inst = self.provider.get_instance(instance_id)
            except ApiNotFoundError:
                return True
            except Exception:  # cannot tell yet
                continue
            if inst.status in GONE_STATUSES:
                return True
        return False

    # -- logging and events -------------------------------------------------------------------------
    def _act(self, report: RunReport, instance_id: str, action: str, reason: str | None, detail: str) -> None:
        entry = Action(_iso(self.context.clock()), instance_id, action, reason, detail)
        report.actions.append(entry)
        LOG.info("watchdog: %s %s%s: %s", action, instance_id, f" ({reason})" if reason else "", detail)
        try:
            append_json_line(self.actions_path, entry.to_dict())
        except OSError as exc:
            report.add_error(f"could not write the action log: {exc}")

    def _emit_terminated(self, record: LedgerRecord, *, by: str) -> None:
        from soong.core.costs import terminated_event

        self._send(terminated_event(record, record.end_or(self.context.clock()), by=by))

    def _send(self, event: Any) -> None:
        try:
            self.emitter.emit(event)
        except Exception as exc:  # the emitter queues sink failures; this is a last resort
            LOG.warning("could not send a cost event: %s", exc)


def last_run(state_dir: Path) -> dict[str, Any] | None:
    """The summary of the last pass, or None if the watchdog never ran."""
    try:
        return json.loads((Path(state_dir) / "last-run.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def recent_actions(state_dir: Path, limit: int = 10) -> list[dict[str, Any]]:
    """The last ``limit`` actions, oldest first."""
    return [a for a in read_json_lines(Path(state_dir) / "actions.jsonl") if isinstance(a, dict)][-limit:]
