"""Each service forgets an order's records `DATA_RETENTION` after the order's saga ended.

Age alone cannot say that a record will not change again: a saga waiting for an operator may
undo a reservation made weeks ago. So the services follow the saga events, as other teams'
services would subscribe to the shop's: an order is ended once its saga's last event (confirmed,
or compensated) is seen, and only then does the retention start. What an ended order left is
final: it is confirmed, or every effect was undone.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from domain.events import SagaEvent
from domain.ids import idempotency_key, workflow_id_for
from infra.eventbus import open_event_bus
from infra.sqlite import Database, sql_time
from ordersaga.consumers import ENDING_EVENTS
from ordersaga.consumers.runner import run_consumers

log = structlog.get_logger()

SCHEMA = """
CREATE TABLE IF NOT EXISTS ended_orders (
    order_id    TEXT PRIMARY KEY,
    ended_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ended_orders_by_time ON ended_orders (ended_at);
"""

Forget = Callable[[sqlite3.Connection, str, str], None]
"""A service's own forgetting: given the open transaction, the ended orders' ids as a JSON array
(for `json_each`; maybe empty) and the horizon (as `created_at` is written), delete its records
of them, and any of its records of no order that are older than the horizon."""

#: The ended orders' ids, in a `Forget`'s statements that take its JSON array as their parameter.
OF_ORDERS = "SELECT value FROM json_each(?)"

#: Orders forgotten per transaction: short enough not to hold up the calls queued behind it.
_BATCH = 200


class OrderRetention:
    """One service's record of ended orders, and the forgetting of them."""

    def __init__(self, db: Database, forget: Forget) -> None:
        """Create the table of ended orders in `db` if it is missing.

        Args:
            db: The service's database.
            forget: Deletes the service's own records of ended orders; its idempotency records
                and tombstones are deleted here, as every service keeps them alike.
        """
        db.apply_schema(SCHEMA)
        self._db = db
        self._forget = forget

    def ended(self, order_id: str, at: datetime) -> None:
        """Note that `order_id`'s saga ended at `at`; a repeat keeps the first time."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO ended_orders (order_id, ended_at) VALUES (?, ?)",
                (order_id, sql_time(at)),
            )

    async def forget_ended_before(self, before: datetime) -> int:
        """Delete every record of the orders that ended before `before`; return how many orders.

        In batches, each one transaction on the event loop's thread (where every write of the
        services runs, `infra.sqlite.Database`), letting calls in between. The last batch is
        empty: the service's `forget` still runs, for records that belong to no order.
        """
        forgotten, horizon = 0, sql_time(before)
        while batch := self._forget_batch(horizon):
            forgotten += batch
            await asyncio.sleep(0)
        return forgotten

    def _forget_batch(self, horizon: str) -> int:
        with self._db.transaction() as conn:
            orders = [
                row["order_id"]
                for row in conn.execute(
                    "SELECT order_id FROM ended_orders WHERE ended_at < ? LIMIT ?",
                    (horizon, _BATCH),
                )
            ]
            ranges = [_keys_of(order) for order in orders]
            conn.executemany("DELETE FROM idempotency WHERE key >= ? AND key < ?", ranges)
            conn.executemany(
                "DELETE FROM tombstones WHERE effect_key >= ? AND effect_key < ?", ranges
            )
            listed = json.dumps(orders)
            self._forget(conn, listed, horizon)
            conn.execute(f"DELETE FROM ended_orders WHERE order_id IN ({OF_ORDERS})", (listed,))
        return len(orders)


def _keys_of(order_id: str) -> tuple[str, str]:
    """The range of the order's keys in the keys' index, from the first to past the last.

    Every key of its calls starts as a step's key with an empty step name would (a
    compensation's adds ":undo" to its step's).
    """
    start = idempotency_key(workflow_id_for(order_id), "")
    return start, start[:-1] + chr(ord(start[-1]) + 1)


def rows_of_orders(table: str) -> Forget:
    """The forgetting of a service whose records of an order are its rows in `table`."""

    def forget(conn: sqlite3.Connection, orders: str, _horizon: str) -> None:
        # `table` is the calling service's constant, never input.
        conn.execute(f"DELETE FROM {table} WHERE order_id IN ({OF_ORDERS})", (orders,))

    return forget


@dataclass(frozen=True)
class EndedOrders:
    """The services' consumer of saga events: it notes each order's end in every service.

    Attributes:
        retentions: Every service's `OrderRetention`.
    """

    retentions: Sequence[OrderRetention]

    @property
    def name(self) -> str:
        """The name the services' position on the bus is kept under."""
        return "services"

    async def handle(self, event: SagaEvent) -> None:
        """Note the end of `event`'s order if it is the last event of its saga."""
        if event.type in ENDING_EVENTS:
            for retention in self.retentions:
                retention.ended(event.order_id, event.occurred_at)

    async def prune(self, before: datetime) -> int:
        """Forget, in every service, the orders that ended before `before`."""
        return sum([await retention.forget_ended_before(before) for retention in self.retentions])


@asynccontextmanager
async def following_ended_orders(
    event_bus_url: str, retention: timedelta, retentions: Sequence[OrderRetention]
) -> AsyncIterator[None]:
    """For the length of the context, note ended orders from the bus and forget them in time.

    The caller has checked the bus (`EventBus.check`) before serving.
    """
    bus = open_event_bus(event_bus_url)
    consumer = EndedOrders(retentions)
    following = asyncio.create_task(
        run_consumers(bus, [consumer], once=False, retention=retention), name="ended orders"
    )
    following.add_done_callback(_report_stop)
    try:
        yield
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await bus.close()


def _report_stop(task: asyncio.Task[dict[str, int]]) -> None:
    if not task.cancelled() and task.exception():
        log.error(
            "ended orders not followed: the services keep every record until restarted",
            error=str(task.exception()),
        )
