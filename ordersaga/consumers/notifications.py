"""The notifications consumer: the message a customer would get, written to a SQLite file.

An order gets one message, when its outcome is known: on `OrderConfirmed`, or on
`SagaCompensated` (once everything was undone, so "you have not been charged" is true). Earlier
events only leave what the message needs: who the customer is, whether and how much the card
was charged, and why the saga failed. The table's keys (the event id, and the order id) make a
redelivered or republished event write nothing twice.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from domain.events import SagaEvent, SagaEventType
from infra.sqlite import Database
from ordersaga.consumers.messages import cancellation_message, confirmation_message
from workflows.order_steps import CHARGED_EVENTS, CONFIRMED_EVENT, ORDER_STEPS

#: The store's file in the data folder.
NOTIFICATIONS_FILE = "notifications.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    customer_id TEXT,
    charged_amount INTEGER,     -- minor units, once PaymentCharged is seen
    charged_currency TEXT,
    failed_step TEXT,
    reason_type TEXT
);
CREATE TABLE IF NOT EXISTS notifications (
    event_id TEXT PRIMARY KEY,  -- the event that produced the message
    order_id TEXT NOT NULL UNIQUE,  -- one message per order outcome
    customer_id TEXT,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL    -- ISO 8601 in UTC: when the outcome happened, by the saga's clock
);
CREATE INDEX IF NOT EXISTS notifications_by_time ON notifications (created_at);
"""


class NotificationKind(StrEnum):
    """What a message tells the customer."""

    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Notification:
    """A message to a customer.

    Attributes:
        event_id: The event that produced it.
        order_id: The order it is about.
        customer_id: Whom it is for (None if the saga's start was never seen).
        kind: Confirmed or cancelled.
        message: The text.
        created_at: When the outcome happened (ISO 8601).
    """

    event_id: str
    order_id: str
    customer_id: str | None
    kind: NotificationKind
    message: str
    created_at: str


class NotificationStore:
    """The notifications consumer's SQLite file."""

    def __init__(self, path: Path) -> None:
        """Open (and if needed create) the store at `path`."""
        self._db = Database(path)
        self._db.apply_schema(SCHEMA)

    @classmethod
    def in_folder(cls, data_dir: Path) -> NotificationStore:
        """The store in the data folder `data_dir`."""
        return cls(data_dir / NOTIFICATIONS_FILE)

    def apply(self, event: SagaEvent) -> None:
        """Note what `event` says of its order; write the message if it ends the saga."""
        data = event.data
        with self._db.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO orders (order_id) VALUES (?)", (event.order_id,))
            match event.type:
                case SagaEventType.ORDER_SAGA_STARTED:
                    self._note(conn, event, customer_id=data["customer_id"])
                case kind if kind in CHARGED_EVENTS:
                    self._note(
                        conn,
                        event,
                        charged_amount=data["amount"],
                        charged_currency=data["currency"],
                    )
                case SagaEventType.SAGA_FAILED:
                    self._note(
                        conn, event, failed_step=data["step"], reason_type=data["reason_type"]
                    )
                case SagaEventType.SAGA_INTERRUPTED:
                    self._note(conn, event, reason_type=data["reason_type"])
                case kind if kind == CONFIRMED_EVENT:
                    message = confirmation_message(
                        event.order_id,
                        int(data["total"]),
                        str(data["currency"]),
                        str(data[confirmed])
                        if (confirmed := ORDER_STEPS[-1].yields) in data
                        else None,
                    )
                    self._notify(conn, event, NotificationKind.CONFIRMED, message)
                case SagaEventType.SAGA_COMPENSATED:
                    order = conn.execute(
                        "SELECT * FROM orders WHERE order_id = ?", (event.order_id,)
                    ).fetchone()
                    charged = order["charged_amount"]
                    message = cancellation_message(
                        event.order_id,
                        order["failed_step"],
                        order["reason_type"],
                        (charged, order["charged_currency"]) if charged else None,
                    )
                    self._notify(conn, event, NotificationKind.CANCELLED, message)

    def prune(self, before: datetime) -> int:
        """Delete the messages of outcomes before `before`, and what was noted for them.

        Returns:
            How many messages were deleted.
        """
        # ISO 8601 times in one zone sort as text.
        cutoff = before.astimezone(UTC).isoformat()
        with self._db.transaction() as conn:
            conn.execute(
                "DELETE FROM orders WHERE order_id IN"
                " (SELECT order_id FROM notifications WHERE created_at < ?)",
                (cutoff,),
            )
            return conn.execute(
                "DELETE FROM notifications WHERE created_at < ?", (cutoff,)
            ).rowcount

    def notifications(self) -> list[Notification]:
        """Every message written, oldest first."""
        with self._db.snapshot() as conn:
            rows = conn.execute(
                "SELECT event_id, order_id, customer_id, kind, message, created_at"
                " FROM notifications ORDER BY created_at, rowid"
            ).fetchall()
        return [
            Notification(**{**dict(row), "kind": NotificationKind(row["kind"])}) for row in rows
        ]

    @staticmethod
    def _note(conn: sqlite3.Connection, event: SagaEvent, **facts: str | int | bool) -> None:
        # Column names come from this module's own keyword arguments, never from event data.
        assignments = ", ".join(f"{column} = ?" for column in facts)
        conn.execute(
            f"UPDATE orders SET {assignments} WHERE order_id = ?",
            (*facts.values(), event.order_id),
        )

    @staticmethod
    def _notify(
        conn: sqlite3.Connection, event: SagaEvent, kind: NotificationKind, message: str
    ) -> None:
        # OR IGNORE: a redelivered event, or a second outcome event of an order that already
        # has its message, writes nothing.
        conn.execute(
            "INSERT OR IGNORE INTO notifications"
            " (event_id, order_id, customer_id, kind, message, created_at)"
            " SELECT ?, ?, customer_id, ?, ?, ? FROM orders WHERE order_id = ?",
            (
                event.event_id,
                event.order_id,
                kind.value,
                message,
                event.occurred_at.isoformat(),
                event.order_id,
            ),
        )


class NotificationsConsumer:
    """Writes customers' messages to a `NotificationStore`."""

    name = "notifications"

    def __init__(self, store: NotificationStore) -> None:
        """Write the messages to `store`."""
        self.store = store

    async def handle(self, event: SagaEvent) -> None:
        """Take `event` into account (SQLite is blocking: in a thread)."""
        await asyncio.to_thread(self.store.apply, event)

    async def prune(self, before: datetime) -> int:
        """Forget the messages of outcomes before `before`."""
        return await asyncio.to_thread(self.store.prune, before)
