"""Reconciliation: bring the ledger in line with the provider's live list of instances.

* An open record whose instance the provider no longer lists (or lists as
  terminated) is marked "first seen gone" at once, and closed once the provider
  confirms it is gone (a lookup answers "not found" or "terminated"). It is
  closed as ended at the time it was first seen gone, with the reason recorded
  before a terminate (:meth:`~soong.core.ledger.Ledger.note_ending`) or
  ``external``. A confirmation keeps one odd, empty list answer from closing
  every record (which would blind the watchdog).
* A launch intent without instance id is matched to a live instance by its
  unique launch name (this is how a kill -9 between the launch call and
  recording the id is repaired). An intent older than the grace period with no
  such instance is marked failed.
* A billable instance the ledger does not know is *untracked* (launched
  elsewhere): it is reported, never touched, and can be adopted.
* A record the ledger has closed but the provider still lists as running is
  *lingering*: reported, so the watchdog can terminate it again.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from typing import Any, Callable, Sequence

from soong.core.ledger import Ledger, LedgerRecord
from soong.core.types import BILLABLE_STATUSES, Instance

#: How long a launch intent may wait for its instance before it counts as failed.
INTENT_GRACE = _dt.timedelta(minutes=30)
#: Statuses that mean the instance is gone (no longer billing).
GONE_STATUSES = ("terminated", "preempted")

#: ``confirm_gone(instance_id)``: True gone, False still there, None could not tell.
ConfirmGone = Callable[[str], "bool | None"]


@dataclasses.dataclass
class ReconcileReport:
    """What one reconciliation found and changed."""

    at: _dt.datetime
    live: list[Instance] = dataclasses.field(default_factory=list)
    #: open records with their live instance (billable now).
    tracked: list[tuple[LedgerRecord, Instance]] = dataclasses.field(default_factory=list)
    closed: list[LedgerRecord] = dataclasses.field(default_factory=list)
    gone_unconfirmed: list[LedgerRecord] = dataclasses.field(default_factory=list)
    attached: list[LedgerRecord] = dataclasses.field(default_factory=list)
    failed_intents: list[LedgerRecord] = dataclasses.field(default_factory=list)
    pending_intents: list[LedgerRecord] = dataclasses.field(default_factory=list)
    untracked: list[Instance] = dataclasses.field(default_factory=list)
    lingering: list[tuple[LedgerRecord, Instance]] = dataclasses.field(default_factory=list)


def reconcile(ledger: Ledger, live: Sequence[Instance], *, now: _dt.datetime, provider: str = "lambda",
              confirm_gone: ConfirmGone | None = None, intent_grace: _dt.timedelta = INTENT_GRACE) -> ReconcileReport:
    """Compare ``ledger`` with ``live`` (the provider's list now) and apply what it shows.

    Without ``confirm_gone`` an instance missing from the list counts as confirmed
    gone. Safe to run from several processes at once: every change is conditional.
    """
    report = ReconcileReport(at=now, live=list(live))
    by_id = {inst.id: inst for inst in live}
    by_name: dict[str, list[Instance]] = {}
    for inst in live:
        if inst.name:
            by_name.setdefault(inst.name, []).append(inst)

    for record in ledger.open_records(provider):
        if record.instance_id is None:
            _resolve_intent(ledger, record, by_name, by_id, now, intent_grace, report)
            continue
        inst = by_id.get(record.instance_id)
        if inst is not None and inst.status not in GONE_STATUSES:
            ledger.mark_seen(record.instance_id, at=now)
            report.tracked.append((ledger.require(record.instance_id), inst))
            continue
        marked = ledger.mark_gone(record.instance_id, at=now)
        confirmed = True if inst is not None or confirm_gone is None else confirm_gone(record.instance_id)
        if not confirmed:
            report.gone_unconfirmed.append(marked)
            continue
        ended_at = marked.first_seen_gone_at or now
        reason = marked.end_requested_reason or "external"
        if ledger.record_termination(record.instance_id, reason=reason, at=ended_at):
            report.closed.append(ledger.require(record.instance_id))

    known = {r.instance_id for r in ledger.records(include_failed=True) if r.instance_id}
    for inst in live:
        if inst.status not in BILLABLE_STATUSES:
            continue
        if inst.id not in known:
            report.untracked.append(inst)
            continue
        record = ledger.get(inst.id)
        if record is not None and not record.is_open and inst.status != "terminating":
            report.lingering.append((record, inst))
    return report


def _resolve_intent(ledger: Ledger, record: LedgerRecord, by_name: dict[str, list[Instance]], by_id: dict[str, Instance],
                    now: _dt.datetime, grace: _dt.timedelta, report: ReconcileReport) -> None:
    candidates = [i for i in by_name.get(record.launch_name, []) if ledger.get(i.id) is None]
    if len(candidates) == 1:
        attached = ledger.record_launched(record.launch_name, candidates[0].id, at=now)
        report.attached.append(attached)
        inst = by_id[candidates[0].id]
        if inst.status in BILLABLE_STATUSES:
            report.tracked.append((attached, inst))
        return
    if not candidates and now - record.intent_at > grace:
        if ledger.record_launch_failed(record.launch_name, at=now, reason="no instance with this launch name appeared"):
            report.failed_intents.append(record)
        return
    report.pending_intents.append(record)


def provider_confirm_gone(provider: Any) -> ConfirmGone:
    """A ``confirm_gone`` that asks ``provider.get_instance`` (not found or terminated: gone)."""
    from soong.core.errors import ApiNotFoundError

    def confirm(instance_id: str) -> bool | None:
        try:
            inst = provider.get_instance(instance_id)
        except ApiNotFoundError:
            return True
        except Exception:  # cannot tell: leave the record open, try again next time
            return None
        return inst.status in GONE_STATUSES

    return confirm


def reconcile_with_provider(context: Any, *, ledger: Ledger | None = None, provider_name: str = "lambda",
                            emit: bool = True) -> ReconcileReport:
    """List the provider's instances and :func:`reconcile` the ledger of ``context`` with them.

    Raises whatever the provider raises for the list call. Every record this closes
    is sent to the cost sinks as a ``terminated`` event (unless ``emit`` is False).
    """
    ledger = ledger or Ledger.for_context(context)
    provider = context.provider(provider_name)
    live = provider.list_instances()
    report = reconcile(ledger, live, now=context.clock(), provider=provider_name, confirm_gone=provider_confirm_gone(provider))
    settle(context, report, emit=emit)
    return report


def release_local_state(context: Any, records: Sequence[LedgerRecord]) -> None:
    """Drop the tunnels and host keys of instances that ended (by their daemon, the console...)."""
    from soong.core.terminate import close_tunnels, forget_host

    for record in records:
        if record.instance_id:
            close_tunnels(context, record.instance_id)
            forget_host(context, record.instance_id)


def settle(context: Any, report: ReconcileReport, *, emit: bool = True) -> None:
    """What follows a reconciliation: cost events for attached and closed records, and
    the local tunnels and host keys of closed instances released."""
    release_local_state(context, report.closed)
    if emit:
        from soong.core.costs import emitter_for, launched_event, terminated_event

        emitter = emitter_for(context)
        for record in report.attached:
            emitter.emit(launched_event(record, report.at))
        for record in report.closed:
            emitter.emit(terminated_event(record, report.at, by="reconcile"))


def adopt_instance(ledger: Ledger, instance: Instance, *, now: _dt.datetime, lease_hours: float, hard_limit_hours: float,
                   price_cents_per_hour: int | None = None, gpu: str | None = None, model: str | None = None) -> LedgerRecord:
    """Track an untracked instance from now on (lease and hard limit counted from ``now``)."""
    price = price_cents_per_hour if price_cents_per_hour is not None else instance.price_cents_per_hour
    if price is None:
        from soong.core.ledger import LedgerError

        raise LedgerError(f"the price of instance {instance.id} is unknown; cannot adopt it")
    return ledger.adopt(instance.id, instance_type=instance.instance_type, region=instance.region, price_cents_per_hour=price,
                        at=now, lease_hours=lease_hours, hard_limit_hours=hard_limit_hours, name=instance.name, gpu=gpu,
                        model=model)


def try_reconcile(context: Any, ledger: Ledger, warn: Callable[[str], None]) -> ReconcileReport | None:
    """:func:`reconcile_with_provider` for commands that still work offline.

    A missing key, a provider that cannot be reached or is not installed becomes
    one warning line and None; the command goes on with the ledger as recorded.
    """
    from soong.core.errors import SoongError

    try:
        report = reconcile_with_provider(context, ledger=ledger)
    except SoongError as exc:
        warn(f"could not compare with the provider ({exc}); showing the ledger as recorded")
        return None
    if report.untracked:
        ids = ", ".join(i.id for i in report.untracked)
        warn(f"{len(report.untracked)} untracked instance(s) launched elsewhere: {ids}; "
             "'soong adopt ID' lets soong watch and end them")
    for record in report.closed:
        warn(f"instance {record.instance_id} is gone from the provider; closed in the ledger ({record.end_reason})")
    return report
