"""The Order service's record of orders: confirmed at the end of a saga, cancelled on undo."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response

from infra.sqlite import new_id
from ports.contract import UndoRequest, UndoResult
from ports.orders import CONFIRMATION_REJECTED, ConfirmRequest, OrderRecord
from services.base import IdempotencyKey, new_service
from services.effects import undo_record
from services.errors import NotFound, Refused
from services.faults import NO_FAULTS, FaultSettings
from services.retention import rows_of_orders

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    confirmation_id TEXT PRIMARY KEY,
    effect_key      TEXT NOT NULL UNIQUE,
    order_id        TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    amount          INTEGER NOT NULL CHECK (amount > 0),
    currency        TEXT NOT NULL,
    reservation_id  TEXT NOT NULL,
    charge_id       TEXT NOT NULL,
    shipment_id     TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS orders_by_order ON orders (order_id);
"""

#: The customer whose orders are never confirmed: the deterministic failing last step.
BLOCKED_CUSTOMER = "cust-blocked"

_COLUMNS = (
    "confirmation_id, order_id, customer_id, amount, currency,"
    " reservation_id, charge_id, shipment_id, status"
)


def create_app(data_dir: Path, faults: FaultSettings = NO_FAULTS) -> FastAPI:
    """The Order service, its database `<data_dir>/orders.db`."""
    service = new_service(
        "orders",
        data_dir,
        SCHEMA,
        faults,
        "The record of confirmed orders.",
        forget=rows_of_orders("orders"),
    )
    app, db, effects = service.app, service.db, service.effects

    @app.post("/confirmations", status_code=201, response_model=OrderRecord)
    async def confirm(request: ConfirmRequest, key: IdempotencyKey) -> Response:
        """Record an order as confirmed (409 ConfirmationRejected for a blocked customer)."""
        return await effects.apply(
            key,
            request,
            lambda conn, effect_key: _confirm(conn, effect_key, request),
            status=201,
            order_id=request.order_id,
        )

    @app.post("/confirmations/cancel", response_model=UndoResult)
    async def cancel(request: UndoRequest, key: IdempotencyKey) -> Response:
        """Cancel the confirmation made under `effect_key`, once."""
        return await effects.undo(key, request, _cancel)

    @app.get("/orders")
    def orders() -> list[OrderRecord]:
        """Every order record, oldest first."""
        with db.snapshot() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM orders ORDER BY created_at, confirmation_id"
            ).fetchall()
        return [OrderRecord.model_validate(dict(row)) for row in rows]

    @app.get("/orders/{order_id}")
    def order(order_id: str) -> OrderRecord:
        """The latest record of an order (404 NotFound if there is none)."""
        with db.snapshot() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM orders WHERE order_id = ?"
                " ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (order_id,),
            ).fetchone()
        if row is None:
            raise NotFound(f"no record of order {order_id}")
        return OrderRecord.model_validate(dict(row))

    return app


def _confirm(conn: sqlite3.Connection, key: str, request: ConfirmRequest) -> OrderRecord:
    if request.customer_id == BLOCKED_CUSTOMER:
        raise Refused(CONFIRMATION_REJECTED, "the customer's account is blocked")
    record = OrderRecord(confirmation_id=new_id("conf"), status="confirmed", **request.model_dump())
    conn.execute(
        f"INSERT INTO orders (effect_key, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key,
            record.confirmation_id,
            record.order_id,
            record.customer_id,
            record.amount,
            record.currency,
            record.reservation_id,
            record.charge_id,
            record.shipment_id,
            record.status,
        ),
    )
    return record


def _cancel(conn: sqlite3.Connection, effect_key: str) -> UndoResult:
    result, _ = undo_record(conn, "orders", "confirmation_id", effect_key, "cancelled")
    return result
