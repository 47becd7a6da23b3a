"""SQLite storage: one database file per service, one short transaction per request."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

#: How long a request waits for another request's write transaction before giving up.
BUSY_TIMEOUT_MS = 5_000


def sql_time(moment: datetime) -> str:
    """`moment` as `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')` writes the time, to compare as text."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Busy(Exception):
    """Another connection holds the write lock, and the caller chose not to wait."""


def new_id(prefix: str) -> str:
    """A fresh random id such as `res_3f2a…`; the prefix tells what kind of record it names."""
    return f"{prefix}_{uuid.uuid4().hex}"


class Database:
    """One service's SQLite database file.

    The services write from `async` endpoints, so every write transaction runs on the event
    loop's thread, one after another: SQLite lets one writer in at a time whatever the threads,
    a transaction here is shorter than the hand-off of it to a pool thread and back would be, and
    with one writing thread no write ever waits for another's lock (which would hold up the
    loop). They read from sync endpoints, on FastAPI's thread pool: a read may be long (the
    audit's lists) and, with write-ahead logging, never waits for the writer.

    Each thread keeps one connection: sqlite3 connections belong to the thread that made them,
    FastAPI runs sync endpoints (and `asyncio.to_thread` runs its calls) on a pool of reused
    threads, and opening a connection per request would cost more than the request under load.
    What each choice was measured to save is in docs/performance.md.
    """

    def __init__(self, path: Path) -> None:
        """Create the file (and its folder) if needed and switch it to write-ahead logging.

        Args:
            path: The database file.
        """
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        # WAL is a property of the file, so once is enough: readers then never wait for the
        # writer, and with synchronous=NORMAL a commit costs no fsync.
        self._connection().execute("PRAGMA journal_mode=WAL")

    def apply_schema(self, schema: str) -> None:
        """Run idempotent DDL (`CREATE TABLE IF NOT EXISTS …`)."""
        self._connection().executescript(schema)

    def add_column(self, table: str, column: str) -> None:
        """Add `column` (its name and type) to `table`, unless the table has it.

        `apply_schema` only shapes new files; this brings a file made by an older schema up to
        date.
        """
        name = column.split()[0]
        with self.transaction() as conn:
            # Names come from the caller's own schema, never from input.
            columns = {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}
            if name not in columns:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")

    @contextmanager
    def transaction(self, *, wait: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed if the block ends normally, rolled back otherwise.

        `BEGIN IMMEDIATE` takes the write lock up front. A deferred transaction that reads and
        then writes can fail with SQLITE_BUSY at the write, without waiting, when another writer
        got in between; taking the lock first makes concurrent requests queue up instead (for at
        most `BUSY_TIMEOUT_MS`) and see each other's committed effects.

        Args:
            wait: If false, do not queue: raise `Busy` at once if another connection holds the
                write lock (for a caller on an event loop, which must not block on another
                process).
        """
        conn = self._connection()
        if wait:
            conn.execute("BEGIN IMMEDIATE")
        else:
            conn.execute("PRAGMA busy_timeout=0")
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                raise Busy(str(err)) from err
            finally:
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query in the block sees the same committed state."""
        conn = self._connection()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("ROLLBACK")

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: the sqlite3 module must not open transactions behind our
            # back; `transaction()` and `snapshot()` say where each one begins and ends.
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._local.conn = conn
        return conn
