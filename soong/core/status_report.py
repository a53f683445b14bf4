"""What ``soong status`` shows, gathered concurrently with short timeouts.

One provider call lists the instances while the instance types come from a
short-lived cache (:mod:`soong.core.type_cache`) and the tunnel records are
read; then every active instance's daemon is asked for ``/status`` at once,
through the tunnel backend, while the ledger is reconciled with the list. A
daemon that cannot be reached leaves its row with what the provider and the
ledger know (graceful degradation); a provider that cannot be reached leaves
the rows the ledger knows, marked unknown. A daemon that says its instance lacks
a secret soong delivers after boot (the Hugging Face token, or the Lambda API key
with ``secrets.api_key_delivery: ssh``) gets it right away
(:mod:`soong.core.secret_delivery`); one that still has no API key is named in a
warning, since it cannot end its instance.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import datetime as _dt
from typing import Any

from soong.core.errors import SoongError
from soong.core.readiness import sglang_state

#: Most daemons asked at once.
MAX_WORKERS = 16


@dataclasses.dataclass
class StatusRow:
    """One line of ``soong status`` (times in seconds; None: unknown)."""

    instance_id: str
    name: str
    status: str
    ip: str = ""
    gpu: str = ""
    region: str = ""
    uptime: float | None = None
    cost_usd: float | None = None
    lease_left: float | None = None
    hard_left: float | None = None
    idle: float | None = None
    model: str = ""
    sglang: str = ""
    tunnel: str = ""
    tracked: str = "tracked"  # tracked | untracked | pending | ended
    daemon: str = ""  # ok | unreachable | refused token | "" (not asked)


@dataclasses.dataclass
class StatusReport:
    """The rows, the budget line and any warnings."""

    rows: list[StatusRow]
    budget: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def total_cost(self) -> float:
        """Cost so far of every row that has one."""
        return sum(r.cost_usd for r in self.rows if r.cost_usd is not None)


def _daemon_status(context: Any, instance: Any, timeout: float) -> tuple[dict[str, Any] | None, str]:
    from soong.core.daemon_client import DaemonAuthError, connect
    from soong.core.errors import SecretError

    try:
        with connect(context, instance, timeout=(min(2.0, timeout), timeout)) as client:
            return client.status(), "ok"
    except DaemonAuthError:
        return None, "refused token"
    except SecretError:
        return None, "no token"
    except SoongError:
        return None, "unreachable"
    except Exception:  # a broken backend plugin must not break the whole table
        return None, "unreachable"


def _status_and_secrets(context: Any, instance: Any, timeout: float) -> tuple[dict[str, Any] | None, str, list[Any]]:
    """The daemon's status, and the secrets delivered because it lacked them."""
    from soong.core.secret_delivery import SecretCourier

    status, daemon = _daemon_status(context, instance, timeout)
    try:
        deliveries = SecretCourier(context).deliver(instance, status) if status is not None else []
    except Exception as exc:  # never let a delivery break the table
        return status, daemon, [f"could not deliver secrets to instance {instance.id}: {exc}"]
    return status, daemon, deliveries


def secrets_lines(instance_id: str, status: dict[str, Any] | None, deliveries: list[Any]) -> tuple[list[str], list[str]]:
    """``(notes, warnings)`` about the secrets of one instance after ``deliveries``."""
    from soong.core.secret_delivery import cannot_self_terminate

    notes, warnings = [], []
    for delivery in deliveries:
        if isinstance(delivery, str):
            warnings.append(delivery)
        elif delivery.outcome == "delivered":
            notes.append(delivery.line())
        else:
            warnings.append(delivery.line())
    key_delivered = any(not isinstance(d, str) and d.name == "lambda-api-key" and d.outcome == "delivered"
                        for d in deliveries)
    if cannot_self_terminate(status) and not key_delivered:
        warnings.append(f"instance {instance_id} cannot end itself: its daemon has no Lambda API key yet "
                        "(secrets.api_key_delivery: ssh); until soong delivers it, only the watchdog ends it")
    return notes, warnings


def _tunnel_states(context: Any) -> dict[str, str]:
    """``up``/``down`` per instance with a recorded persistent tunnel, from every backend that has one."""
    from soong.core.tunnel_state import TunnelStore

    registry = context.plugins.tunnel_backends()
    names = {context.config.get("tunnel.backend")} | {s.backend for s in TunnelStore(context.paths.state_dir).all()}
    states: dict[str, str] = {}
    for name in sorted(n for n in names if n in registry):
        for record in context.tunnel_backend(name).list():
            states[record.instance_id] = "up" if record.alive else "down"
    return states


def _seconds_left(moment: _dt.datetime | None, now: _dt.datetime) -> float | None:
    return None if moment is None else max((moment - now).total_seconds(), 0.0)


def _sglang_text(status: dict[str, Any] | None, daemon: str) -> str:
    if status is None:
        return "?" if daemon else ""
    shutdown = status.get("shutdown")
    if shutdown:
        return f"shutting down ({shutdown.get('reason')})"
    return sglang_state(status) or "starting"


def build_row(instance: Any, record: Any, status: dict[str, Any] | None, daemon: str, itype: Any, tunnel: str,
              now: _dt.datetime) -> StatusRow:
    """One row from what each source knows (any of ``record``, ``status``, ``itype`` may be None)."""
    row = StatusRow(instance.id, instance.name or "", instance.status, ip=instance.ip or "",
                    gpu=(itype.gpu_description if itype else "") or instance.instance_type, region=instance.region,
                    tunnel=tunnel, daemon=daemon, tracked="tracked" if record is not None else "untracked")
    if record is not None:
        row.uptime = (now - record.started_at).total_seconds()
        row.cost_usd = record.cost_usd(now)
        row.lease_left = _seconds_left(record.lease_ends_at, now)
        row.hard_left = _seconds_left(record.hard_limit_at, now)
        row.model = record.model or ""
    if status is not None:
        row.uptime = status.get("uptime_seconds", row.uptime)
        row.lease_left = (status.get("lease") or {}).get("seconds_left", row.lease_left)
        hard = (status.get("hard_limit") or {}).get("seconds_left")
        row.hard_left = hard if row.hard_left is None or hard is None else min(hard, row.hard_left)
        row.idle = (status.get("idle") or {}).get("idle_seconds")
        row.model = status.get("model") or row.model
    row.sglang = _sglang_text(status, daemon)
    return row


def ended_row(record: Any, now: _dt.datetime) -> StatusRow:
    """A row for an ended (or pending) ledger record."""
    if record.state == "intent":
        return StatusRow(record.instance_id or "(launching)", record.launch_name, "launch pending",
                         gpu=record.gpu or record.instance_type, region=record.region, model=record.model or "",
                         cost_usd=record.cost_usd(now), uptime=(now - record.started_at).total_seconds(),
                         tracked="pending")
    state = "ended" + (f" ({record.end_reason})" if record.end_reason else "")
    if record.state == "failed":
        state = "launch failed"
    return StatusRow(record.instance_id or "-", record.launch_name, state, gpu=record.gpu or record.instance_type,
                     region=record.region, uptime=record.hours(now) * 3600, cost_usd=record.cost_usd(now),
                     model=record.model or "", tracked="ended")


def _reconcile(context: Any, ledger: Any, provider: Any, live: list[Any], now: _dt.datetime, report: StatusReport) -> Any:
    from soong.core.reconcile import provider_confirm_gone, reconcile, settle

    result = reconcile(ledger, live, now=now, provider=provider.name, confirm_gone=provider_confirm_gone(provider))
    settle(context, result)
    for record in result.closed:
        report.warnings.append(f"instance {record.instance_id} is gone from the provider; closed in the ledger "
                               f"({record.end_reason})")
    if result.untracked:
        report.warnings.append(f"{len(result.untracked)} untracked instance(s) launched elsewhere; "
                               "'soong adopt ID' lets soong watch and end them")
    return result


def gather(context: Any, *, instance_id: str | None = None, include_ended: bool = False,
           provider_name: str = "lambda") -> StatusReport:
    """Collect every row (see the module docstring)."""
    from soong.core.budget import budget_status
    from soong.core.ledger import Ledger
    from soong.core.type_cache import cached_instance_types

    ledger = Ledger.for_context(context)
    provider = context.provider(provider_name)
    timeout = float(context.config.get("status.daemon_timeout_seconds"))
    report = StatusReport(rows=[])
    with cf.ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="status") as pool:
        live_future = pool.submit(provider.list_instances)
        types_future = pool.submit(cached_instance_types, context, provider)
        tunnels_future = pool.submit(_tunnel_states, context)
        try:
            live = live_future.result()
        except SoongError as exc:
            live = None
            report.warnings.append(f"could not list instances ({exc}); showing the ledger as recorded")
        now = context.clock()
        daemon_futures = {}
        if live is not None:
            for inst in live:
                if inst.is_billable and inst.ip and inst.status in ("active", "unhealthy") \
                        and instance_id in (None, inst.id):
                    daemon_futures[inst.id] = pool.submit(_status_and_secrets, context, inst, timeout)
            _reconcile(context, ledger, provider, live, now, report)
        try:
            types = {t.name: t for t in types_future.result()}
        except SoongError:
            types = {}
        try:
            tunnels = tunnels_future.result()
        except (SoongError, OSError):
            tunnels = {}
        records = {r.instance_id: r for r in ledger.records(include_failed=include_ended) if r.instance_id}
        shown: set[str] = set()
        for inst in live or []:
            if not inst.is_billable or instance_id not in (None, inst.id):
                continue
            status, daemon, deliveries = daemon_futures[inst.id].result() if inst.id in daemon_futures else (None, "", [])
            notes, warnings = secrets_lines(inst.id, status, deliveries)
            report.notes += notes
            report.warnings += warnings
            record = records.get(inst.id)
            report.rows.append(build_row(inst, record if record and record.is_open else record, status, daemon,
                                         types.get(inst.instance_type), tunnels.get(inst.id, "-"), now))
            shown.add(inst.id)
    for record in ledger.records(include_failed=include_ended):
        if record.instance_id in shown or instance_id not in (None, record.instance_id):
            continue
        if record.state == "running":
            row = ended_row(record, now)
            row.tracked = "tracked"
            row.status = "unknown (provider unreachable)" if live is None else "not listed (checking)"
            report.rows.append(row)
        elif record.state == "intent" or include_ended:
            report.rows.append(ended_row(record, now))
    report.budget = budget_status(ledger, context.config, now).describe()
    return report
