"""The local ledger: every instance soong launched or adopted, in SQLite.

The ledger is soong's own memory of what it has spent money on. The lifecycle
records a launch *intent* before it calls the provider (so a kill -9 at any later
point still leaves a row that reconciliation can match by the unique launch name),
then the instance id once known, extensions, the termination with its reason and
final cost, and the time an instance was first seen gone.

It is a pure data layer: no plugin, provider or network is needed to use it.
The database lives at ``$XDG_DATA_HOME/soong/ledger.sqlite3`` (per profile), in
WAL mode with a busy timeout, and every write is one ``BEGIN IMMEDIATE``
transaction, so several soong processes may use it at once. Updates that close
or claim something are conditional (``... WHERE ended_at IS NULL``) and report
whether *this* call made the change, so two racing callers act once.

Times are timezone-aware datetimes; they are stored as UTC ISO 8601 text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator

from soong.core.errors import NotFoundError, SoongError
from soong.core.ledger_record import (  # noqa: F401 - re-exported: the ledger's public names
    _TIME_FIELDS,
    OPEN_STATES,
    STATES,
    UTC,
    LedgerRecord,
    from_text,
    hours_between,
    to_text,
)
from soong.core.paths import private_dir
from soong.core.types import TERMINATION_REASONS, CostEvent

LEDGER_FILE = "ledger.sqlite3"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    launch_name TEXT NOT NULL UNIQUE,
    instance_id TEXT UNIQUE,
    provider TEXT NOT NULL,
    instance_type TEXT NOT NULL,
    gpu TEXT,
    region TEXT NOT NULL,
    price_cents_per_hour INTEGER NOT NULL,
    model TEXT,
    state TEXT NOT NULL,
    intent_at TEXT NOT NULL,
    launched_at TEXT,
    lease_ends_at TEXT NOT NULL,
    hard_limit_at TEXT NOT NULL,
    adopted INTEGER NOT NULL DEFAULT 0,
    last_seen_at TEXT,
    first_seen_gone_at TEXT,
    daemon_unreachable_since TEXT,
    end_requested_at TEXT,
    end_requested_reason TEXT,
    ended_at TEXT,
    end_reason TEXT,
    final_cost_usd REAL,
    note TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_state ON instances(state);
CREATE TABLE IF NOT EXISTS extensions (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    at TEXT NOT NULL,
    hours REAL,
    lease_ends_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    at TEXT NOT NULL,
    reason TEXT,
    cost_usd REAL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_instance ON events(instance_id, at);
"""


class LedgerError(SoongError):
    """The ledger cannot be read or written, or a change contradicts what it records."""


def _record(row: sqlite3.Row) -> LedgerRecord:
    values: dict[str, Any] = {}
    for field in dataclasses.fields(LedgerRecord):
        raw = row[field.name]
        if field.name in _TIME_FIELDS:
            raw = from_text(raw)
        elif field.name == "adopted":
            raw = bool(raw)
        values[field.name] = raw
    return LedgerRecord(**values)


class Ledger:
    """The SQLite ledger at ``path`` (created 0600 in a 0700 folder on first use).

    :param busy_timeout: seconds a write waits for another process's transaction.
    """

    def __init__(self, path: Path | str, *, busy_timeout: float = 15.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()

    @classmethod
    def for_context(cls, context: Any) -> "Ledger":
        """The ledger of ``context``'s profile."""
        return cls(context.paths.data_dir / LEDGER_FILE)

    # -- connections ----------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        cached = getattr(self._local, "conn", None)
        if cached is not None and cached[0] == os.getpid():
            return cached[1]
        conn = self._open()
        self._local.conn = (os.getpid(), conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            private_dir(self.path.parent)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                        for statement in _SCHEMA.split(";"):
                            if statement.strip():
                                conn.execute(statement)
                        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            elif conn.execute("PRAGMA user_version").fetchone()[0] > SCHEMA_VERSION:
                raise LedgerError(f"the ledger {self.path} was written by a newer soong; upgrade soong")
            return conn
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the ledger {self.path}: {exc}") from None
        except OSError as exc:
            raise LedgerError(f"cannot open the ledger {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        """Close this thread's connection (a new one opens on next use)."""
        cached = getattr(self._local, "conn", None)
        if cached is not None:
            cached[1].close()
            self._local.conn = None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise LedgerError(f"the ledger {self.path} is busy or unwritable: {exc}") from None
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise LedgerError(f"the ledger {self.path} could not be updated: {exc}") from None
            raise

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise LedgerError(f"the ledger {self.path} could not be read: {exc}") from None

    @staticmethod
    def _one(conn: sqlite3.Connection, column: str, value: str) -> LedgerRecord | None:
        row = conn.execute(f"SELECT * FROM instances WHERE {column} = ?", (value,)).fetchone()
        return None if row is None else _record(row)

    # -- launches -----------------------------------------------------------------------
    def record_intent(self, launch_name: str, *, instance_type: str, region: str, price_cents_per_hour: int,
                      lease_hours: float, hard_limit_hours: float, at: _dt.datetime, model: str | None = None,
                      gpu: str | None = None, provider: str = "lambda", note: str | None = None) -> LedgerRecord:
        """Record that a launch named ``launch_name`` is about to be sent (call BEFORE the API call).

        The lease and hard limit count from ``at`` (the lease never past the hard
        limit). Raises :class:`LedgerError` if the name was used before: launch names
        must be unique, since they are how an unanswered launch is found again.
        """
        if not launch_name:
            raise LedgerError("a launch needs a name")
        if isinstance(price_cents_per_hour, bool) or not isinstance(price_cents_per_hour, int) or price_cents_per_hour < 0:
            raise LedgerError(f"invalid price {price_cents_per_hour!r} (whole cents per hour, not negative)")
        if not (hard_limit_hours > 0 and lease_hours > 0):
            raise LedgerError("lease and hard limit must be positive")
        hard_limit_at = at + _dt.timedelta(hours=hard_limit_hours)
        lease_ends_at = min(at + _dt.timedelta(hours=lease_hours), hard_limit_at)
        now = to_text(at)
        with self._write() as conn:
            if self._one(conn, "launch_name", launch_name) is not None:
                raise LedgerError(f"launch name '{launch_name}' is already in the ledger; names must be unique")
            conn.execute(
                "INSERT INTO instances (launch_name, provider, instance_type, gpu, region, price_cents_per_hour, model,"
                " state, intent_at, lease_ends_at, hard_limit_at, note, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'intent', ?, ?, ?, ?, ?)",
                (launch_name, provider, instance_type, gpu, region, price_cents_per_hour, model, now,
                 to_text(lease_ends_at), to_text(hard_limit_at), note, now),
            )
            return self._one(conn, "launch_name", launch_name)  # type: ignore[return-value]

    def record_launched(self, launch_name: str, instance_id: str, *, at: _dt.datetime) -> LedgerRecord:
        """Attach the provider's instance id to a launch (idempotent for the same id).

        Raises :class:`LedgerError` if the launch is unknown, already has another
        id, or the id belongs to another launch.
        """
        with self._write() as conn:
            record = self._one(conn, "launch_name", launch_name)
            if record is None:
                raise LedgerError(f"no launch named '{launch_name}' in the ledger")
            if record.instance_id == instance_id:
                return record
            if record.instance_id is not None:
                raise LedgerError(f"launch '{launch_name}' already has instance {record.instance_id}")
            other = self._one(conn, "instance_id", instance_id)
            if other is not None:
                raise LedgerError(f"instance {instance_id} already belongs to launch '{other.launch_name}'")
            state = "running" if record.state in ("intent", "failed") else record.state
            conn.execute(
                "UPDATE instances SET instance_id = ?, launched_at = ?, state = ?, last_seen_at = ?, updated_at = ?"
                " WHERE launch_name = ?",
                (instance_id, to_text(at), state, to_text(at), to_text(at), launch_name),
            )
            return self._one(conn, "launch_name", launch_name)  # type: ignore[return-value]

    def record_launch_failed(self, launch_name: str, *, at: _dt.datetime, reason: str) -> bool:
        """Mark a launch that surely created no instance; True if this call changed it.

        Only an ``intent`` without instance id can fail; use it only when the
        provider said no (capacity, invalid request), never after a timeout.
        """
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE instances SET state = 'failed', ended_at = ?, note = ?, final_cost_usd = 0, updated_at = ?"
                " WHERE launch_name = ? AND state = 'intent' AND instance_id IS NULL",
                (to_text(at), reason, to_text(at), launch_name),
            )
            return cursor.rowcount == 1

    def adopt(self, instance_id: str, *, instance_type: str, region: str, price_cents_per_hour: int, at: _dt.datetime,
              lease_hours: float, hard_limit_hours: float, name: str | None = None, gpu: str | None = None,
              provider: str = "lambda", model: str | None = None) -> LedgerRecord:
        """Start tracking an instance launched elsewhere, as if launched at ``at``.

        Its real launch time is unknown, so cost is counted from ``at`` and the
        lease and hard limit run from then. Raises :class:`LedgerError` if tracked.
        """
        launch_name = f"adopted-{instance_id}"
        with self._write() as conn:
            if self._one(conn, "instance_id", instance_id) is not None:
                raise LedgerError(f"instance {instance_id} is already in the ledger")
        self.record_intent(launch_name, instance_type=instance_type, region=region, price_cents_per_hour=price_cents_per_hour,
                           lease_hours=lease_hours, hard_limit_hours=hard_limit_hours, at=at, model=model, gpu=gpu,
                           provider=provider, note=f"adopted (launched elsewhere as {name!r})" if name else "adopted")
        with self._write() as conn:
            conn.execute("UPDATE instances SET adopted = 1 WHERE launch_name = ?", (launch_name,))
        return self.record_launched(launch_name, instance_id, at=at)

    # -- while running ------------------------------------------------------------------------
    def record_extension(self, instance_id: str, *, lease_ends_at: _dt.datetime, at: _dt.datetime,
                         hours: float | None = None) -> LedgerRecord:
        """Record a new lease end (never past the hard limit) for an open instance."""
        with self._write() as conn:
            record = self._require_open(conn, instance_id)
            new_end = min(lease_ends_at, record.hard_limit_at)
            conn.execute("UPDATE instances SET lease_ends_at = ?, updated_at = ? WHERE instance_id = ?",
                         (to_text(new_end), to_text(at), instance_id))
            conn.execute("INSERT INTO extensions (instance_id, at, hours, lease_ends_at) VALUES (?, ?, ?, ?)",
                         (instance_id, to_text(at), hours, to_text(new_end)))
            return self._one(conn, "instance_id", instance_id)  # type: ignore[return-value]

    def extensions(self, instance_id: str) -> list[tuple[_dt.datetime, float | None, _dt.datetime]]:
        """``(at, hours, new lease end)`` of every extension of an instance, oldest first."""
        rows = self._query("SELECT at, hours, lease_ends_at FROM extensions WHERE instance_id = ? ORDER BY row_id", (instance_id,))
        return [(from_text(r["at"]), r["hours"], from_text(r["lease_ends_at"])) for r in rows]  # type: ignore[misc]

    def mark_seen(self, instance_id: str, *, at: _dt.datetime) -> None:
        """The provider lists the instance alive now (clears a "first seen gone" mark)."""
        with self._write() as conn:
            conn.execute("UPDATE instances SET last_seen_at = ?, first_seen_gone_at = NULL WHERE instance_id = ? AND state = 'running'",
                         (to_text(at), instance_id))

    def mark_gone(self, instance_id: str, *, at: _dt.datetime) -> LedgerRecord:
        """The provider no longer lists the instance; keep the FIRST time that was seen."""
        with self._write() as conn:
            conn.execute("UPDATE instances SET first_seen_gone_at = ?, updated_at = ?"
                         " WHERE instance_id = ? AND first_seen_gone_at IS NULL AND state = 'running'",
                         (to_text(at), to_text(at), instance_id))
            return self._require(conn, instance_id)

    def set_daemon_unreachable(self, instance_id: str, since: _dt.datetime | None) -> LedgerRecord:
        """Record since when the instance's daemon has not answered (keeps the earliest); None clears it."""
        with self._write() as conn:
            if since is None:
                conn.execute("UPDATE instances SET daemon_unreachable_since = NULL WHERE instance_id = ?", (instance_id,))
            else:
                conn.execute("UPDATE instances SET daemon_unreachable_since = ? WHERE instance_id = ? AND daemon_unreachable_since IS NULL",
                             (to_text(since), instance_id))
            return self._require(conn, instance_id)

    # -- ending ---------------------------------------------------------------------------------
    def note_ending(self, instance_id: str, *, reason: str, at: _dt.datetime) -> bool:
        """Record why an instance is about to be terminated, BEFORE asking the provider.

        Keeps the first reason; True if this call set it. If the terminate cannot be
        confirmed, reconciliation later closes the record with this reason.
        """
        _check_reason(reason)
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE instances SET end_requested_at = ?, end_requested_reason = ?, updated_at = ?"
                " WHERE instance_id = ? AND end_requested_at IS NULL AND state = 'running'",
                (to_text(at), reason, to_text(at), instance_id),
            )
            if cursor.rowcount == 0:
                self._require(conn, instance_id)
            return cursor.rowcount == 1

    def record_termination(self, instance_id: str, *, reason: str, at: _dt.datetime,
                           final_cost_usd: float | None = None) -> bool:
        """Close an instance: ended at ``at`` for ``reason``, with its final cost.

        Idempotent: only the first call closes the record and returns True; later
        calls (another process, a retried command) return False and change nothing.
        Without ``final_cost_usd`` the cost is price times hours to ``at``.
        """
        _check_reason(reason)
        with self._write() as conn:
            record = self._require(conn, instance_id)
            if not record.is_open:
                return False
            end = max(at, record.started_at)
            cost = final_cost_usd if final_cost_usd is not None else record.price_per_hour * hours_between(record.started_at, end)
            cursor = conn.execute(
                "UPDATE instances SET state = 'ended', ended_at = ?, end_reason = ?, final_cost_usd = ?,"
                " daemon_unreachable_since = NULL, updated_at = ? WHERE instance_id = ? AND state IN ('intent', 'running')",
                (to_text(end), reason, round(cost, 6), to_text(at), instance_id),
            )
            return cursor.rowcount == 1

    # -- queries ----------------------------------------------------------------------------------
    def get(self, instance_id: str) -> LedgerRecord | None:
        """The record of an instance id, or None."""
        rows = self._query("SELECT * FROM instances WHERE instance_id = ?", (instance_id,))
        return _record(rows[0]) if rows else None

    def get_by_name(self, launch_name: str) -> LedgerRecord | None:
        """The record of a launch name, or None."""
        rows = self._query("SELECT * FROM instances WHERE launch_name = ?", (launch_name,))
        return _record(rows[0]) if rows else None

    def require(self, instance_id: str) -> LedgerRecord:
        """The record of an instance id; :class:`NotFoundError` when unknown."""
        record = self.get(instance_id)
        if record is None:
            raise NotFoundError(f"instance {instance_id} is not in the ledger")
        return record

    def open_records(self, provider: str | None = None) -> list[LedgerRecord]:
        """Every record that may still be billing (``intent`` or ``running``), oldest first."""
        sql = "SELECT * FROM instances WHERE state IN ('intent', 'running')"
        params: tuple = ()
        if provider:
            sql, params = sql + " AND provider = ?", (provider,)
        return [_record(r) for r in self._query(sql + " ORDER BY intent_at, row_id", params)]

    def records(self, *, since: _dt.datetime | None = None, until: _dt.datetime | None = None,
                instance_id: str | None = None, include_failed: bool = False) -> list[LedgerRecord]:
        """Records whose run overlaps ``[since, until)`` (open ones always overlap), oldest first."""
        clauses, params = [], []
        if since is not None:
            clauses.append("(ended_at IS NULL OR ended_at >= ?)")
            params.append(to_text(since))
        if until is not None:
            clauses.append("intent_at < ?")
            params.append(to_text(until))
        if instance_id is not None:
            clauses.append("instance_id = ?")
            params.append(instance_id)
        if not include_failed:
            clauses.append("state != 'failed'")
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return [_record(r) for r in self._query(f"SELECT * FROM instances{where} ORDER BY intent_at, row_id", tuple(params))]

    # -- events -----------------------------------------------------------------------------------
    def add_event(self, event: CostEvent) -> bool:
        """Store a cost event; False if an event with the same ``data['event_id']`` is already there."""
        body = event.to_dict()
        event_id = str(event.data.get("event_id") or _content_id(body))
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO events (event_id, kind, instance_id, at, reason, cost_usd, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event_id, event.kind, event.instance_id, to_text(event.at), event.reason, event.cost_usd,
                 json.dumps(body, sort_keys=True, default=str)),
            )
            return cursor.rowcount == 1

    def events(self, *, instance_id: str | None = None, kind: str | None = None,
               since: _dt.datetime | None = None) -> list[CostEvent]:
        """Stored events, oldest first, optionally filtered."""
        clauses, params = [], []
        for column, value in (("instance_id", instance_id), ("kind", kind)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            clauses.append("at >= ?")
            params.append(to_text(since))
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._query(f"SELECT body FROM events{where} ORDER BY at, row_id", tuple(params))
        return [CostEvent.from_dict(json.loads(r["body"])) for r in rows]

    # -- helpers ----------------------------------------------------------------------------------
    def _require(self, conn: sqlite3.Connection, instance_id: str) -> LedgerRecord:
        record = self._one(conn, "instance_id", instance_id)
        if record is None:
            raise NotFoundError(f"instance {instance_id} is not in the ledger")
        return record

    def _require_open(self, conn: sqlite3.Connection, instance_id: str) -> LedgerRecord:
        record = self._require(conn, instance_id)
        if not record.is_open:
            raise LedgerError(f"instance {instance_id} has already ended ({record.end_reason})")
        return record


def _check_reason(reason: str) -> None:
    if reason not in TERMINATION_REASONS:
        raise LedgerError(f"unknown termination reason {reason!r} (one of {', '.join(TERMINATION_REASONS)})")


def _content_id(body: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:32]
