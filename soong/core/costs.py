"""Cost events and their delivery to every registered cost sink.

:class:`CostEmitter` sends each :class:`~soong.core.types.CostEvent` to every sink
from ``context.plugins.cost_sinks()``. Sinks run side by side, each in its own
thread with a deadline, so one slow or failing sink neither blocks the command
nor costs the others the event. A failed (or timed-out) delivery goes to a
bounded on-disk queue, one per sink, under the profile's state dir; the queue is
retried the next time an emitter is used (the next command), oldest first, and
while a sink still has a backlog new events queue behind it so each sink sees
events in order. ``soong sinks status`` shows queue sizes and last errors.

Delivery is at least once: every event carries a unique ``data['event_id']``
that sinks use to drop duplicates (the ledger does).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import sys
import threading
import uuid
import weakref
from pathlib import Path
from typing import Any, Callable, Mapping

from soong.core.atomic import write_private
from soong.core.jsonl import locked, read_json_lines
from soong.core.redact import redact
from soong.core.types import COST_EVENT_KINDS, CostEvent

QUEUE_DIR = "cost-queue"
DEFAULT_QUEUE_MAX = 1000
DEFAULT_SINK_TIMEOUT = 10.0


def with_event_id(event: CostEvent) -> CostEvent:
    """``event`` with a unique ``data['event_id']`` (kept if it already has one)."""
    if event.data.get("event_id"):
        return event
    return dataclasses.replace(event, data={**event.data, "event_id": uuid.uuid4().hex})


def _now_text() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass(frozen=True)
class SinkStatus:
    """What ``soong sinks status`` shows for one sink."""

    name: str
    queued: int
    dropped: int
    last_error: str | None
    last_error_at: str | None
    oldest_queued_at: str | None


class DeliveryQueue:
    """Bounded on-disk queues of undelivered events, one file per sink.

    ``<dir>/<sink>.jsonl`` holds the entries (rewritten atomically under a lock),
    ``<dir>/<sink>.meta.json`` the counters. When a queue is full the oldest entry
    is dropped and counted: the bound keeps a long-dead sink from filling the disk.
    """

    def __init__(self, directory: Path, *, max_items: int = DEFAULT_QUEUE_MAX) -> None:
        self.directory = Path(directory)
        self.max_items = max(1, int(max_items))

    def _paths(self, sink: str) -> tuple[Path, Path, Path]:
        return (self.directory / f"{sink}.jsonl", self.directory / f"{sink}.meta.json", self.directory / f"{sink}.lock")

    def _read_meta(self, sink: str) -> dict[str, Any]:
        import json

        try:
            return json.loads(self._paths(sink)[1].read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}

    def _write_entries(self, sink: str, entries: list[dict[str, Any]]) -> None:
        import json

        text = "".join(json.dumps(e, sort_keys=True, separators=(",", ":"), default=str) + "\n" for e in entries)
        write_private(self._paths(sink)[0], text)

    def _write_meta(self, sink: str, meta: dict[str, Any]) -> None:
        import json

        write_private(self._paths(sink)[1], json.dumps(meta, sort_keys=True))

    def entries(self, sink: str) -> list[dict[str, Any]]:
        """The queued entries of ``sink``, oldest first (``{"event", "queued_at", "attempts", "error"}``)."""
        return [e for e in read_json_lines(self._paths(sink)[0]) if isinstance(e, dict) and "event" in e]

    def size(self, sink: str) -> int:
        """How many events wait for ``sink``."""
        return len(self.entries(sink))

    def sinks(self) -> list[str]:
        """Every sink with a queue file or counters on disk."""
        if not self.directory.is_dir():
            return []
        names = set()
        for path in self.directory.iterdir():
            for suffix in (".meta.json", ".jsonl"):
                if path.name.endswith(suffix):
                    names.add(path.name[: -len(suffix)])
                    break
        return sorted(names)

    def push(self, sink: str, event: CostEvent, error: str) -> int:
        """Queue ``event`` for ``sink``; return how many old entries were dropped to make room."""
        _, _, lock = self._paths(sink)
        with locked(lock):
            entries = self.entries(sink)
            entries.append({"event": event.to_dict(), "queued_at": _now_text(), "attempts": 1, "error": error})
            dropped = max(0, len(entries) - self.max_items)
            entries = entries[dropped:]
            self._write_entries(sink, entries)
            meta = self._read_meta(sink)
            meta.update(last_error=error, last_error_at=_now_text(), dropped=int(meta.get("dropped", 0)) + dropped)
            self._write_meta(sink, meta)
        return dropped

    def drain(self, sink: str, deliver: Callable[[CostEvent], None]) -> tuple[int, int, str | None]:
        """Deliver queued events oldest first, stopping at the first failure.

        Returns ``(delivered, still queued, error)``. If another process is
        draining the same queue, returns at once without delivering.
        """
        path, _, lock = self._paths(sink)
        if not path.exists():
            return 0, 0, None
        drain_lock = self.directory / f"{sink}.drain.lock"
        with locked(drain_lock, blocking=False) as mine:
            if not mine:
                return 0, self.size(sink), None
            with locked(lock):
                pending = self.entries(sink)
            done: set[str] = set()
            error: str | None = None
            for entry in pending:
                try:
                    event = CostEvent.from_dict(entry["event"])
                    deliver(event)
                except Exception as exc:  # a sink may fail in any way; the entry stays queued
                    error = redact(f"{type(exc).__name__}: {exc}")
                    break
                done.add(str(event.data.get("event_id")))
            with locked(lock):
                entries = self.entries(sink)
                remaining = [e for e in entries if str((e["event"].get("data") or {}).get("event_id")) not in done]
                if error is not None and remaining:
                    remaining[0]["attempts"] = int(remaining[0].get("attempts", 1)) + 1
                    remaining[0]["error"] = error
                if remaining != entries or error is not None:
                    self._write_entries(sink, remaining)
                if error is not None:
                    meta = self._read_meta(sink)
                    meta.update(last_error=error, last_error_at=_now_text())
                    self._write_meta(sink, meta)
            return len(done), len(remaining), error

    def status(self, sink: str) -> SinkStatus:
        """Queue size and counters of one sink."""
        entries = self.entries(sink)
        meta = self._read_meta(sink)
        return SinkStatus(sink, len(entries), int(meta.get("dropped", 0)), meta.get("last_error"),
                          meta.get("last_error_at"), entries[0].get("queued_at") if entries else None)


@dataclasses.dataclass
class EmitReport:
    """Which sinks took an event and which had it queued (with why)."""

    event: CostEvent
    delivered: list[str] = dataclasses.field(default_factory=list)
    queued: dict[str, str] = dataclasses.field(default_factory=dict)


class CostEmitter:
    """Sends cost events to every registered sink; queues what a sink fails to take.

    :param context: the :class:`~soong.core.context.Context` sinks are built with.
    :param sinks: sink classes by name (default: ``context.plugins.cost_sinks()``).
    :param queue: the delivery queue (default: under ``context.paths.state_dir``).
    :param timeout: seconds one delivery may take before it counts as failed.
    :param warn: where one-line warnings go (stderr by default).
    """

    def __init__(self, context: Any, *, sinks: Mapping[str, type] | None = None, queue: DeliveryQueue | None = None,
                 timeout: float | None = None, warn: Callable[[str], None] | None = None) -> None:
        self.context = context
        self._sink_classes = dict(sinks) if sinks is not None else None
        self.queue = queue or DeliveryQueue(context.paths.state_dir / QUEUE_DIR, max_items=_config(context, "costs.queue_max", DEFAULT_QUEUE_MAX))
        self.timeout = timeout if timeout is not None else _config(context, "costs.sink_timeout_seconds", DEFAULT_SINK_TIMEOUT)
        self.warn = warn or (lambda message: print(f"soong: warning: {message}", file=sys.stderr))
        self._instances: dict[str, Any] = {}
        self._build_lock = threading.Lock()
        self._failing: set[str] = set()
        self._retried = False

    @property
    def sink_classes(self) -> dict[str, type]:
        """Sink classes by name."""
        if self._sink_classes is None:
            self._sink_classes = dict(self.context.plugins.cost_sinks())
        return self._sink_classes

    def _sink(self, name: str) -> Any:
        with self._build_lock:
            if name not in self._instances:
                self._instances[name] = self.sink_classes[name](self.context)
            return self._instances[name]

    def _deliver(self, name: str, event: CostEvent) -> None:
        self._sink(name).emit(event)

    def _run_all(self, jobs: dict[str, Callable[[], Any]]) -> dict[str, tuple[bool, Any]]:
        """Run one job per sink in threads; ``{name: (ok, result or error text)}`` by the deadline."""
        results: dict[str, tuple[bool, Any]] = {}

        def work(name: str, job: Callable[[], Any]) -> None:
            try:
                results[name] = (True, job())
            except Exception as exc:  # reported, never raised into the command
                results[name] = (False, redact(f"{type(exc).__name__}: {exc}"))

        threads = {name: threading.Thread(target=work, args=(name, job), daemon=True, name=f"cost-sink-{name}") for name, job in jobs.items()}
        for thread in threads.values():
            thread.start()
        deadline = _monotonic() + self.timeout
        for name, thread in threads.items():
            thread.join(max(0.0, deadline - _monotonic()))
            if thread.is_alive() or name not in results:
                results[name] = (False, f"timed out after {self.timeout:g}s")
        return results

    def retry_pending(self) -> dict[str, tuple[int, int, str | None]]:
        """Retry every sink's queued events; ``{sink: (delivered, still queued, error)}``."""
        self._retried = True
        names = [n for n in self.queue.sinks() if n in self.sink_classes]
        jobs = {name: (lambda n=name: self.queue.drain(n, lambda ev, n=n: self._deliver(n, ev))) for name in names}
        outcome: dict[str, tuple[int, int, str | None]] = {}
        for name, (ok, result) in self._run_all(jobs).items():
            outcome[name] = result if ok else (0, self.queue.size(name), result)
            if outcome[name][1]:
                self._failing.add(name)
            else:
                self._failing.discard(name)
        return outcome

    def emit(self, event: CostEvent) -> EmitReport:
        """Send ``event`` to every sink; never raises because of a sink."""
        if event.kind not in COST_EVENT_KINDS:
            raise ValueError(f"unknown cost event kind {event.kind!r}")
        event = with_event_id(event)
        if not self._retried:
            self.retry_pending()
        report = EmitReport(event)
        behind = {name for name in self.sink_classes if name in self._failing}
        for name in sorted(behind):
            self._queue(report, name, "earlier events for this sink are still queued", warn=False)
        jobs = {name: (lambda n=name: self._deliver(n, event)) for name in self.sink_classes if name not in behind}
        for name, (ok, result) in sorted(self._run_all(jobs).items()):
            if ok:
                report.delivered.append(name)
            else:
                self._failing.add(name)
                self._queue(report, name, result, warn=True)
        return report

    def _queue(self, report: EmitReport, name: str, error: str, *, warn: bool) -> None:
        try:
            dropped = self.queue.push(name, report.event, error)
        except OSError as exc:
            self.warn(f"cost sink '{name}' failed ({error}) and its queue could not be written: {exc}; event lost for this sink")
            report.queued[name] = error
            return
        report.queued[name] = error
        if warn:
            extra = f"; {dropped} oldest queued event(s) dropped (queue full)" if dropped else ""
            self.warn(f"cost sink '{name}' failed: {error}; event queued ({self.queue.size(name)} waiting, "
                      f"see 'soong sinks status'){extra}")

    def status(self) -> list[SinkStatus]:
        """Queue status of every registered sink (and of queues left by removed sinks)."""
        names = sorted(set(self.sink_classes) | set(self.queue.sinks()))
        return [self.queue.status(name) for name in names]

    def close(self) -> None:
        """Close every sink that was built."""
        for sink in self._instances.values():
            try:
                sink.close()
            except Exception:  # closing must not fail a command
                pass
        self._instances.clear()


def _monotonic() -> float:
    import time

    return time.monotonic()


def _config(context: Any, key: str, default: Any) -> Any:
    try:
        value = context.config.get(key)
    except Exception:  # an older config schema, or no config: use the default
        return default
    return default if value is None else value


_EMITTERS: "weakref.WeakKeyDictionary[Any, CostEmitter]" = weakref.WeakKeyDictionary()


def emitter_for(context: Any) -> CostEmitter:
    """The emitter of ``context`` (one per context, built on first use)."""
    emitter = _EMITTERS.get(context)
    if emitter is None:
        emitter = _EMITTERS[context] = CostEmitter(context)
    return emitter


def emit(context: Any, event: CostEvent) -> EmitReport:
    """Send ``event`` to every sink of ``context`` (see :class:`CostEmitter`)."""
    return emitter_for(context).emit(event)


# -- building events from ledger records -------------------------------------------------------


def event_from_record(record: Any, kind: str, at: _dt.datetime, *, reason: str | None = None,
                      cost_usd: float | None = None, **data: Any) -> CostEvent:
    """A cost event about a :class:`~soong.core.ledger.LedgerRecord`."""
    details = {
        "launch_name": record.launch_name,
        "model": record.model,
        "gpu": record.gpu,
        "lease_ends_at": record.lease_ends_at.isoformat(),
        "hard_limit_at": record.hard_limit_at.isoformat(),
    }
    details.update({k: v for k, v in data.items() if v is not None})
    return CostEvent(kind=kind, instance_id=record.instance_id or record.launch_name, at=at, provider=record.provider,
                     instance_type=record.instance_type, region=record.region,
                     price_cents_per_hour=record.price_cents_per_hour, cost_usd=cost_usd, reason=reason,
                     data={k: v for k, v in details.items() if v is not None})


def launched_event(record: Any, at: _dt.datetime) -> CostEvent:
    """``launched``: the instance exists (its id is in the ledger)."""
    return event_from_record(record, "launched", at, cost_usd=0.0, adopted=record.adopted or None)


def extended_event(record: Any, at: _dt.datetime, hours: float | None = None) -> CostEvent:
    """``extended``: the lease was extended (``record`` already has the new lease end)."""
    return event_from_record(record, "extended", at, cost_usd=round(record.cost_usd(at), 6), hours=hours)


def terminated_event(record: Any, at: _dt.datetime, *, by: str | None = None) -> CostEvent:
    """``terminated``: the instance ended (``record`` is the closed record, with its final cost)."""
    return event_from_record(record, "terminated", at, reason=record.end_reason, cost_usd=record.cost_usd(at),
                             hours=round(record.hours(at), 6), by=by)


def accrued_event(record: Any, at: _dt.datetime) -> CostEvent:
    """``accrued``: a snapshot of what an open instance has cost so far."""
    return event_from_record(record, "accrued", at, cost_usd=round(record.cost_usd(at), 6), hours=round(record.hours(at), 6))


def activity_summary_event(context: Any, provider: Any, record: Any, *, timeout: float = 3.0) -> CostEvent | None:
    """An ``activity`` event from the instance's daemon (``GET /status``), or None when it has no address.

    Raises :class:`~soong.core.errors.SoongError` when the daemon cannot be asked.
    """
    from soong.core.daemon_client import connect

    instance = provider.get_instance(record.instance_id)
    if not instance.ip:
        return None
    with connect(context, instance, timeout=(timeout, timeout)) as client:
        status = client.status()
    summary = {
        "activity_counts": dict(status.get("activity_counts") or {}),
        "idle_seconds": (status.get("idle") or {}).get("idle_seconds"),
        "last_activity": status.get("last_activity"),
    }
    return activity_event(record, context.clock(), summary)


def activity_event(record: Any, at: _dt.datetime, summary: Mapping[str, Any]) -> CostEvent:
    """``activity``: a summary of use (requests, tokens, idle minutes) reported by the daemon."""
    return event_from_record(record, "activity", at, cost_usd=round(record.cost_usd(at), 6), activity=dict(summary))
