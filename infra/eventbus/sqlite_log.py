"""The embedded event bus: a durable log of saga events in one SQLite file.

Several worker processes may publish to the same file at once, and several consumers read it,
each at its own saved position. SQLite serialises writers, so positions (an autoincrement key)
are handed out in commit order: a reader never sees position N+1 before N has committed, and a
consumer that saves "I handled up to N" can never skip an event committed later with a lower
number.

New events are found by polling, every `poll_interval_s` while idle. That costs one indexed
read per interval per consumer, which is nothing next to a saga, and avoids the cross-process
notification SQLite does not have. A consumer therefore sees an event within about one interval
of its commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from domain.events import SagaEvent
from infra.eventbus.base import EventHandler
from infra.sqlite import Busy, Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    order_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    published_at REAL           -- seconds since the Unix epoch; NULL in logs made before it
);
CREATE TABLE IF NOT EXISTS consumer_offsets (
    consumer TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
"""

#: Events read per query: enough to amortise the read, few enough to keep memory flat.
BATCH_SIZE = 100

#: Seconds between looks for new events while a consumer is caught up.
DEFAULT_POLL_INTERVAL_S = 0.2


class SqliteEventLog:
    """An `EventBus` on a SQLite file: events in publishing order, one offset per consumer.

    Each consumer name must be consumed by one process at a time; different names are
    independent.
    """

    def __init__(self, path: Path, *, poll_interval_s: float = DEFAULT_POLL_INTERVAL_S) -> None:
        """Open (and if needed create) the log.

        Args:
            path: The database file; its folder is created if missing.
            poll_interval_s: Seconds between looks for new events while idle.
        """
        self.path = path
        self.poll_interval_s = poll_interval_s
        self._db = Database(path)
        self._db.apply_schema(SCHEMA)
        self._db.add_column("events", "published_at REAL")

    @classmethod
    def from_url(cls, url: str) -> SqliteEventLog:
        """The log at `sqlite:///PATH?poll_interval_s=SECONDS` (the query is optional).

        As in SQLAlchemy, PATH is everything after the third slash: `sqlite:///data/events.db`
        is relative to the working folder, `sqlite:////var/lib/events.db` absolute.

        Raises:
            ValueError: The URL names a host, or no file.
        """
        parts = urlsplit(url)
        if parts.netloc or len(parts.path) < 2:
            raise ValueError(f"a SQLite event bus URL is sqlite:///path/to/events.db, not {url!r}")
        query = dict(parse_qsl(parts.query))
        return cls(
            Path(parts.path[1:]),
            poll_interval_s=float(query.get("poll_interval_s", DEFAULT_POLL_INTERVAL_S)),
        )

    async def publish(self, events: Sequence[SagaEvent]) -> None:
        """Append `events`, in order, in one transaction, skipping ids already in the log.

        On the event loop's thread, as the services write (`infra.sqlite.Database`): the
        transaction is shorter than handing it to a thread and back. But the file is shared
        with other processes (more workers, the consumers), and the loop must never wait for
        their lock: if another holds it, the transaction waits for it on a thread instead.
        """
        if not events:
            return
        try:
            self._insert(events, wait=False)
        except Busy:
            await asyncio.to_thread(self._insert, events)

    async def consume(self, consumer: str, handler: EventHandler, *, stop_when_idle: bool) -> int:
        """Feed `consumer` every event after its saved position, saving it after each event.

        If `handler` raises (or the task is cancelled while it runs), the position stays before
        that event, so a restarted consumer gets it again: at most one event is redelivered.
        """
        position = await asyncio.to_thread(self._register, consumer)
        handled = 0
        while True:
            batch = await asyncio.to_thread(self._read_after, position)
            if not batch:
                if stop_when_idle:
                    return handled
                await asyncio.sleep(self.poll_interval_s)
                continue
            for event_position, event in batch:
                await handler(event)
                await asyncio.to_thread(self._save_position, consumer, event_position)
                position = event_position
                handled += 1

    async def prune(self, before: datetime) -> int:
        """Delete the events published before `before` that every consumer has handled.

        A consumer the log has never seen would start from the beginning and miss what was
        deleted, so name every consumer to the log (consume once) before pruning it.
        """
        return await asyncio.to_thread(self._delete_before, before.timestamp())

    async def check(self) -> None:
        """Nothing to check: the file was opened (and its schema applied) when the log was made."""

    async def close(self) -> None:
        """Nothing to release: each thread's connection closes when the thread ends."""

    def _insert(self, events: Sequence[SagaEvent], *, wait: bool = True) -> None:
        now = time.time()
        rows = [
            (e.event_id, e.order_id, e.sequence, e.type, e.model_dump_json(), now) for e in events
        ]
        with self._db.transaction(wait=wait) as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO events (event_id, order_id, sequence, type, body,"
                " published_at) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def _delete_before(self, cutoff: float) -> int:
        # Positions grow with publishing time, so the events to delete are a prefix of the log:
        # up to the first one published since the cutoff (found by reading only the prefix),
        # and no further than the slowest consumer has got.
        with self._db.transaction() as conn:
            return conn.execute(
                "DELETE FROM events WHERE position <= (SELECT min(position) FROM consumer_offsets)"
                " AND position < coalesce("
                "(SELECT position FROM events WHERE published_at >= ? ORDER BY position LIMIT 1),"
                " (SELECT max(position) + 1 FROM events))",
                (cutoff,),
            ).rowcount

    def _register(self, consumer: str) -> int:
        # A consumer on record holds back pruning from its first run on, before it has
        # handled anything.
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO consumer_offsets (consumer, position) VALUES (?, 0)",
                (consumer,),
            )
            row = conn.execute(
                "SELECT position FROM consumer_offsets WHERE consumer = ?", (consumer,)
            ).fetchone()
        return int(row["position"])

    def _read_after(self, position: int) -> list[tuple[int, SagaEvent]]:
        with self._db.snapshot() as conn:
            rows = conn.execute(
                "SELECT position, body FROM events WHERE position > ? ORDER BY position LIMIT ?",
                (position, BATCH_SIZE),
            ).fetchall()
        return [(row["position"], SagaEvent.model_validate_json(row["body"])) for row in rows]

    def _save_position(self, consumer: str, position: int) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO consumer_offsets (consumer, position) VALUES (?, ?)"
                " ON CONFLICT (consumer) DO UPDATE SET position = excluded.position",
                (consumer, position),
            )
