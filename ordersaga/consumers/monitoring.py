"""The monitoring consumer: the state of every saga, kept in a SQLite file of its own.

Each event is applied in one transaction that also records its id, so an event redelivered by
the bus (or published twice) is applied once, and one whose sequence is not newer than the last
applied for its order is ignored: the record only moves forward. The dashboard's figures are
computed from these records by `ordersaga.consumers.figures`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from domain.events import SagaEvent, SagaEventType
from infra.sqlite import Database
from workflows.order_steps import CONFIRMED_EVENT, ORDER_STEPS

#: The store's file in the data folder.
MONITORING_FILE = "monitoring.db"

SCHEMA = """
-- A redelivered event is known by its sequence; files made before that kept every event id.
DROP TABLE IF EXISTS applied_events;
CREATE TABLE IF NOT EXISTS sagas (
    order_id TEXT PRIMARY KEY,
    last_sequence INTEGER NOT NULL,
    last_event TEXT NOT NULL,
    started_at INTEGER,         -- microseconds since the Unix epoch, by the workflow's clock
    ended_at INTEGER,
    outcome TEXT,               -- confirmed, aborted, failed, withdrawn, cancelled; NULL: running
    failed_step TEXT,
    reason_type TEXT,
    total INTEGER,              -- minor units of currency
    currency TEXT,
    compensations TEXT NOT NULL,  -- names, comma-separated, in the order they ran
    needs_attention INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sagas_by_end ON sagas (ended_at);
CREATE INDEX IF NOT EXISTS sagas_by_start ON sagas (started_at);
"""

#: The compensation each compensation event reports.
COMPENSATION_OF = {row.undone_event: row.undo for row in ORDER_STEPS}


class Outcome(StrEnum):
    """How a saga ended: its end state (`SagaState`), in lower case."""

    CONFIRMED = "confirmed"
    ABORTED = "aborted"  # a step failed; compensated: it had steps to undo
    FAILED = "failed"  # a step failed; nothing to undo
    WITHDRAWN = "withdrawn"  # the customer took the order back: no step failed
    CANCELLED = "cancelled"  # cancelled from outside: no step failed


@dataclass(frozen=True)
class SagaRecord:
    """What monitoring knows of one saga.

    Attributes:
        order_id: The order.
        last_sequence: Sequence of the last event applied.
        last_event: Type of the last event applied.
        started_at: When the saga started (None if its start was never seen).
        ended_at: When it was confirmed or finished compensating; None while running.
        outcome: How it ended; None while running.
        failed_step: The step that failed, if one did.
        reason_type: Why: the refusal's type, `Cancelled`, `OrderWithdrawn`, ...
        total: The order total in minor units of `currency`.
        currency: The order's currency.
        compensations: Compensations run (including those an operator did by hand), in order.
        needs_attention: A compensation is waiting for an operator now.
    """

    order_id: str
    last_sequence: int = 0
    last_event: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: Outcome | None = None
    failed_step: str | None = None
    reason_type: str | None = None
    total: int | None = None
    currency: str | None = None
    compensations: tuple[str, ...] = ()
    needs_attention: bool = False

    @property
    def duration(self) -> timedelta | None:
        """From start to end, if both are known."""
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


def advance(record: SagaRecord, event: SagaEvent) -> SagaRecord:
    """`record` after `event` (which the caller has checked is newer than the record)."""
    record = replace(record, last_sequence=event.sequence, last_event=event.type)
    data = event.data
    match event.type:
        case SagaEventType.ORDER_SAGA_STARTED:
            return replace(
                record,
                started_at=event.occurred_at,
                total=int(data["total"]),
                currency=str(data["currency"]),
            )
        case kind if kind == CONFIRMED_EVENT:
            return replace(
                record,
                ended_at=event.occurred_at,
                outcome=Outcome.CONFIRMED,
                total=int(data["total"]),
                currency=str(data["currency"]),
            )
        case SagaEventType.SAGA_FAILED:
            return replace(
                record, failed_step=str(data["step"]), reason_type=str(data["reason_type"])
            )
        case SagaEventType.SAGA_INTERRUPTED:
            return replace(record, reason_type=str(data["reason_type"]))
        case SagaEventType.COMPENSATION_NEEDS_ATTENTION:
            return replace(record, needs_attention=True)
        case SagaEventType.SAGA_COMPENSATED:
            # The saga's own list is the authority on what ran, whatever events came before.
            names = str(data.get("compensations", ""))
            return replace(
                record,
                ended_at=event.occurred_at,
                outcome=Outcome(str(data["state"]).lower()),
                compensations=tuple(n for n in names.split(",") if n),
                needs_attention=False,
            )
        case kind if kind in COMPENSATION_OF:
            # A compensation done (by the saga or by an operator) ends any wait for one.
            done = COMPENSATION_OF[kind]
            return replace(
                record, compensations=(*record.compensations, done), needs_attention=False
            )
    return record


class MonitoringStore:
    """The monitoring consumer's SQLite file: one `SagaRecord` per order."""

    def __init__(self, path: Path) -> None:
        """Open (and if needed create) the store at `path`."""
        self._db = Database(path)
        self._db.apply_schema(SCHEMA)

    @classmethod
    def in_folder(cls, data_dir: Path) -> MonitoringStore:
        """The store in the data folder `data_dir`."""
        return cls(data_dir / MONITORING_FILE)

    def apply(self, event: SagaEvent) -> bool:
        """Apply `event` unless it is not newer than the order's record (a redelivery).

        Returns:
            Whether the record changed.
        """
        with self._db.transaction() as conn:
            row = conn.execute("SELECT * FROM sagas WHERE order_id = ?", (event.order_id,))
            found = row.fetchone()
            record = _record(found) if found else SagaRecord(order_id=event.order_id)
            if event.sequence <= record.last_sequence:
                return False
            _write(conn, advance(record, event))
            return True

    def prune(self, before: datetime) -> int:
        """Delete the records of sagas that ended before `before`; return how many."""
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM sagas WHERE ended_at < ?", (_ts(before),)).rowcount

    def record(self, order_id: str) -> SagaRecord | None:
        """The record of `order_id`, if any event of it was applied."""
        return next(iter(self._select("WHERE order_id = ?", order_id)), None)

    def ended_between(self, start: datetime, end: datetime) -> list[SagaRecord]:
        """Sagas that ended in the interval (`start`, `end`]."""
        return self._select("WHERE ended_at > ? AND ended_at <= ?", _ts(start), _ts(end))

    def started_between(self, start: datetime, end: datetime) -> list[SagaRecord]:
        """Sagas that started in the interval (`start`, `end`]."""
        return self._select("WHERE started_at > ? AND started_at <= ?", _ts(start), _ts(end))

    def active_at(self, moment: datetime) -> list[SagaRecord]:
        """Sagas running at `moment`: started by then (or start unseen), not ended by then."""
        return self._select(
            "WHERE (started_at IS NULL OR started_at <= ?) AND (ended_at IS NULL OR ended_at > ?)"
            " ORDER BY started_at",
            _ts(moment),
            _ts(moment),
        )

    def _select(self, where: str, *params: int | str) -> list[SagaRecord]:
        with self._db.snapshot() as conn:
            rows = conn.execute(f"SELECT * FROM sagas {where}", params).fetchall()
        return [_record(row) for row in rows]


class MonitoringConsumer:
    """Applies every saga event to a `MonitoringStore`."""

    name = "monitoring"

    def __init__(self, store: MonitoringStore) -> None:
        """Keep the records in `store`."""
        self.store = store

    async def handle(self, event: SagaEvent) -> None:
        """Apply `event` (SQLite is blocking: in a thread)."""
        await asyncio.to_thread(self.store.apply, event)

    async def prune(self, before: datetime) -> int:
        """Forget the sagas that ended before `before`."""
        return await asyncio.to_thread(self.store.prune, before)


#: Times are stored as whole microseconds since this, so that durations come back exact.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ts(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def _moment(ts: int | None) -> datetime | None:
    return None if ts is None else EPOCH + timedelta(microseconds=ts)


def _record(row: sqlite3.Row) -> SagaRecord:
    return SagaRecord(
        order_id=row["order_id"],
        last_sequence=row["last_sequence"],
        last_event=row["last_event"],
        started_at=_moment(row["started_at"]),
        ended_at=_moment(row["ended_at"]),
        outcome=Outcome(row["outcome"]) if row["outcome"] else None,
        failed_step=row["failed_step"],
        reason_type=row["reason_type"],
        total=row["total"],
        currency=row["currency"],
        compensations=tuple(n for n in row["compensations"].split(",") if n),
        needs_attention=bool(row["needs_attention"]),
    )


def _write(conn: sqlite3.Connection, record: SagaRecord) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO sagas (order_id, last_sequence, last_event, started_at, ended_at,"
        " outcome, failed_step, reason_type, total, currency, compensations, needs_attention)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.order_id,
            record.last_sequence,
            record.last_event,
            _ts(record.started_at) if record.started_at else None,
            _ts(record.ended_at) if record.ended_at else None,
            record.outcome.value if record.outcome else None,
            record.failed_step,
            record.reason_type,
            record.total,
            record.currency,
            ",".join(record.compensations),
            int(record.needs_attention),
        ),
    )
