"""Effects applied exactly once per idempotency key, and undone by naming that key.

Every mutating call of every service goes through `Effects`:

1. the fault plan is drawn (latency, and maybe a failure before anything happens);
2. in ONE write transaction: a stored answer for the key is replayed, or else the effect runs
   and its answer (success or business refusal) is stored with the key and a fingerprint of the
   request;
3. maybe a failure after the commit: the effect stays, the answer is lost, a retry replays it.

A compensation names the forward effect by the forward call's key (the "effect key") and leaves a
tombstone for it, so that a forward call with that key arriving later (a timed-out request still
in flight) is refused instead of taking effect after its undo.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from fastapi.responses import Response
from pydantic import BaseModel

from infra.sqlite import Database
from ports.contract import ALREADY_COMPENSATED, NOT_FOUND, UndoRequest, UndoResult
from services.errors import IdempotencyKeyReused, InjectedFault, Refused
from services.faults import FaultInjector

log = structlog.get_logger()

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    key         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status      INTEGER NOT NULL,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS tombstones (
    effect_key  TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
"""

#: Header that marks an answer as the stored answer of an earlier call with the same key.
REPLAYED_HEADER = "Idempotent-Replayed"

Effect = Callable[[sqlite3.Connection, str], BaseModel]
"""A forward effect: given the open transaction and the call's key, make the change, return
the answer, or raise `Refusal` (everything it wrote is then rolled back)."""

Undo = Callable[[sqlite3.Connection, str], UndoResult]
"""An undo: given the open transaction and the effect key, undo that effect if it is live."""


@dataclass(frozen=True)
class _Answer:
    status: int
    body: str
    replayed: bool = False

    def response(self) -> Response:
        headers = {REPLAYED_HEADER: "true"} if self.replayed else None
        return Response(self.body, self.status, headers=headers, media_type="application/json")


class Effects:
    """The exactly-once machinery of one service: its idempotency records, tombstones and faults."""

    def __init__(self, service: str, db: Database, faults: FaultInjector) -> None:
        """Create the idempotency and tombstone tables in `db` if they are missing.

        Args:
            service: The service's name, for logs.
            db: The service's database; records are kept beside the effects they describe.
            faults: Decides which calls are delayed or fail.
        """
        self._service = service
        self._faults = faults
        self._db = db
        db.apply_schema(SCHEMA)

    async def apply(
        self, key: str, request: BaseModel, effect: Effect, *, status: int, order_id: str | None
    ) -> Response:
        """Run `effect` once for `key`; answer a repeat with the stored answer.

        Args:
            key: The call's `Idempotency-Key`.
            request: The validated request body; its fingerprint detects a key reused for
                another request.
            effect: The change to make.
            status: The HTTP status of a success.
            order_id: The order concerned, for logs.

        Returns:
            The answer: the effect's result, its refusal, or the stored answer of an earlier call.

        Raises:
            InjectedFault: The fault settings say this call fails.
            IdempotencyKeyReused: `key` was stored with a different request.
        """
        plan = self._faults.plan()
        if plan.delay_s:
            # Before the transaction, so a slow call does not hold the write lock.
            await asyncio.sleep(plan.delay_s)
        if plan.fail and not plan.after_commit:
            self._log_fault(key, order_id, "fault_before_effect")
            raise InjectedFault()
        fingerprint = _fingerprint(request)
        with self._db.transaction() as conn:
            answer = _stored_answer(conn, key, fingerprint)
            if answer is None:
                answer = _first_answer(conn, key, effect, status)
                conn.execute(
                    "INSERT INTO idempotency (key, fingerprint, status, body) VALUES (?, ?, ?, ?)",
                    (key, fingerprint, answer.status, answer.body),
                )
        log.info(
            "effect",
            service=self._service,
            operation=type(request).__name__,
            order_id=order_id,
            key=key,
            status=answer.status,
            outcome="ok" if answer.status < 400 else json.loads(answer.body)["code"],
            replayed=answer.replayed,
        )
        if plan.fail:
            self._log_fault(key, order_id, "fault_after_commit")
            raise InjectedFault()
        return answer.response()

    async def undo(self, key: str, request: UndoRequest, undo: Undo) -> Response:
        """Undo the effect recorded under `request.effect_key`, once, and tombstone that key.

        Args:
            key: The compensation call's own `Idempotency-Key` (by convention effect key + ":undo").
            request: Names the effect to undo.
            undo: The service's undo of one effect; a no-op answering `NOT_FOUND` if there is none.

        Returns:
            The `UndoResult` answer, 200 even when there was nothing to undo.
        """

        def tombstone_and_undo(conn: sqlite3.Connection, _key: str) -> UndoResult:
            conn.execute(
                "INSERT OR IGNORE INTO tombstones (effect_key) VALUES (?)", (request.effect_key,)
            )
            return undo(conn, request.effect_key)

        return await self.apply(key, request, tombstone_and_undo, status=200, order_id=None)

    def _log_fault(self, key: str, order_id: str | None, outcome: str) -> None:
        log.warning("effect", service=self._service, order_id=order_id, key=key, outcome=outcome)


def undo_record(
    conn: sqlite3.Connection, table: str, id_column: str, effect_key: str, undone: str
) -> tuple[UndoResult, bool]:
    """Set the status of the record `effect_key` created in `table` to `undone`.

    Every service keeps its records with an `effect_key` and a `status` column, so this is the
    common part of every undo.

    Args:
        conn: The open write transaction.
        table: The table of records (a constant of the calling service, never input).
        id_column: The table's id column.
        effect_key: The key of the forward call that created the record.
        undone: The status that means "undone" (released, refunded, cancelled).

    Returns:
        The undo's answer, and whether the record was undone just now (False if there is no such
        record or it was undone before), so the caller knows whether to do the rest of the undo.
    """
    row = conn.execute(
        f"SELECT {id_column} AS id, status FROM {table} WHERE effect_key = ?", (effect_key,)
    ).fetchone()
    if row is None:
        return UndoResult(effect_key=effect_key, status=NOT_FOUND), False
    undone_now = row["status"] != undone
    if undone_now:
        conn.execute(f"UPDATE {table} SET status = ? WHERE effect_key = ?", (undone, effect_key))
    return UndoResult(effect_key=effect_key, status=undone, id=row["id"]), undone_now


def _fingerprint(request: BaseModel) -> str:
    # The validated model, not the raw bytes: the same request with other whitespace or field
    # order is the same request. The model's name keeps one key from fitting two operations.
    text = f"{type(request).__name__}:{request.model_dump_json()}"
    return hashlib.sha256(text.encode()).hexdigest()


def _stored_answer(conn: sqlite3.Connection, key: str, fingerprint: str) -> _Answer | None:
    row = conn.execute(
        "SELECT fingerprint, status, body FROM idempotency WHERE key = ?", (key,)
    ).fetchone()
    if row is None:
        return None
    if row["fingerprint"] != fingerprint:
        raise IdempotencyKeyReused()
    return _Answer(row["status"], row["body"], replayed=True)


def _first_answer(conn: sqlite3.Connection, key: str, effect: Effect, status: int) -> _Answer:
    if conn.execute("SELECT 1 FROM tombstones WHERE effect_key = ?", (key,)).fetchone():
        refusal = Refused(ALREADY_COMPENSATED, "this effect was already compensated")
        return _Answer(refusal.status, refusal.body())
    # A savepoint, so that a refusal raised half-way (the third item of an order out of stock)
    # takes back what the effect already wrote, while the refusal itself is still recorded.
    conn.execute("SAVEPOINT effect")
    try:
        answer = _Answer(status, effect(conn, key).model_dump_json())
    except Refused as refusal:
        conn.execute("ROLLBACK TO effect")
        answer = _Answer(refusal.status, refusal.body())
    conn.execute("RELEASE effect")
    return answer
