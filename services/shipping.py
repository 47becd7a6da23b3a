"""The Shipping service: shipments scheduled to an address, cancelled on undo."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import TypeAdapter

from infra.sqlite import new_id
from ports.contract import LineItem, UndoRequest, UndoResult
from ports.shipping import SHIPPING_UNAVAILABLE, Shipment, ShipmentRequest
from services.base import IdempotencyKey, new_service
from services.effects import undo_record
from services.errors import Refused
from services.faults import NO_FAULTS, FaultSettings
from services.retention import rows_of_orders

SCHEMA = """
CREATE TABLE IF NOT EXISTS shipments (
    shipment_id TEXT PRIMARY KEY,
    effect_key  TEXT NOT NULL UNIQUE,
    order_id    TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('scheduled', 'cancelled')),
    items       TEXT NOT NULL,
    address     TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS shipments_by_order ON shipments (order_id);
"""

#: The postal code no carrier serves: the deterministic undeliverable address.
UNSERVED_POSTAL_CODE = "00000"

_line_items = TypeAdapter(list[LineItem])


def create_app(data_dir: Path, faults: FaultSettings = NO_FAULTS) -> FastAPI:
    """The Shipping service, its database `<data_dir>/shipping.db`."""
    service = new_service(
        "shipping",
        data_dir,
        SCHEMA,
        faults,
        "Shipments of orders' items.",
        forget=rows_of_orders("shipments"),
    )
    app, db, effects = service.app, service.db, service.effects

    @app.post("/shipments", status_code=201, response_model=Shipment)
    async def schedule(request: ShipmentRequest, key: IdempotencyKey) -> Response:
        """Schedule a shipment (422 ShippingUnavailable if no carrier serves the address)."""
        return await effects.apply(
            key,
            request,
            lambda conn, effect_key: _schedule(conn, effect_key, request),
            status=201,
            order_id=request.order_id,
        )

    @app.post("/shipments/cancel", response_model=UndoResult)
    async def cancel(request: UndoRequest, key: IdempotencyKey) -> Response:
        """Cancel the shipment scheduled under `effect_key`, once."""
        return await effects.undo(key, request, _cancel)

    @app.get("/shipments")
    def shipments(order_id: str | None = None) -> list[Shipment]:
        """Shipments, of one order if `order_id` is given."""
        with db.snapshot() as conn:
            rows = conn.execute(
                "SELECT shipment_id, order_id, status, items FROM shipments"
                " WHERE ?1 IS NULL OR order_id = ?1 ORDER BY created_at, shipment_id",
                (order_id,),
            ).fetchall()
        return [
            Shipment(
                shipment_id=row["shipment_id"],
                order_id=row["order_id"],
                status=row["status"],
                items=_line_items.validate_json(row["items"]),
            )
            for row in rows
        ]

    return app


def _schedule(conn: sqlite3.Connection, key: str, request: ShipmentRequest) -> Shipment:
    if request.address.postal_code == UNSERVED_POSTAL_CODE:
        # Say why without repeating the address: answers end up in workflow history and logs.
        raise Refused(SHIPPING_UNAVAILABLE, "no carrier serves this postal code")
    shipment = Shipment(
        shipment_id=new_id("shp"),
        order_id=request.order_id,
        status="scheduled",
        items=request.items,
    )
    conn.execute(
        "INSERT INTO shipments (shipment_id, effect_key, order_id, status, items, address)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            shipment.shipment_id,
            key,
            shipment.order_id,
            shipment.status,
            _line_items.dump_json(request.items).decode(),
            json.dumps(request.address.model_dump()),
        ),
    )
    return shipment


def _cancel(conn: sqlite3.Connection, effect_key: str) -> UndoResult:
    result, _ = undo_record(conn, "shipments", "shipment_id", effect_key, "cancelled")
    return result
