"""The Inventory service: stock per SKU, reserved all-or-nothing per order and released on undo."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel, Field

from domain.fields import Identifier
from infra.sqlite import Database, new_id
from ports.contract import LineItem, UndoRequest, UndoResult, WireModel
from ports.inventory import OUT_OF_STOCK, UNKNOWN_SKU, Reservation, ReserveRequest
from services.base import IdempotencyKey, new_service
from services.effects import undo_record
from services.errors import Refused
from services.faults import NO_FAULTS, FaultSettings
from services.retention import OF_ORDERS, rows_of_orders

SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (
    sku         TEXT PRIMARY KEY,
    available   INTEGER NOT NULL CHECK (available >= 0)
);
CREATE TABLE IF NOT EXISTS reservations (
    reservation_id  TEXT PRIMARY KEY,
    effect_key      TEXT NOT NULL UNIQUE,
    order_id        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('reserved', 'released')),
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS reservations_by_order ON reservations (order_id);
CREATE TABLE IF NOT EXISTS reservation_items (
    reservation_id  TEXT NOT NULL REFERENCES reservations (reservation_id),
    line            INTEGER NOT NULL,
    sku             TEXT NOT NULL,
    quantity        INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, line)
);
-- Every change of stock that is not a reservation or a release: the seed and admin calls.
-- Their sum per SKU is the starting stock `order-saga audit` checks conservation against.
CREATE TABLE IF NOT EXISTS stock_adjustments (
    adjustment_id   INTEGER PRIMARY KEY,
    sku             TEXT NOT NULL,
    delta           INTEGER NOT NULL,
    reason          TEXT NOT NULL CHECK (reason IN ('seed', 'admin')),
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
-- Units of confirmed orders whose reservations were forgotten, a retention after their sagas
-- ended: they left with the orders' shipments. Per SKU, the adjustments add up to the units
-- available, held by live reservations and fulfilled.
CREATE TABLE IF NOT EXISTS fulfilled (
    sku     TEXT PRIMARY KEY,
    units   INTEGER NOT NULL CHECK (units >= 0)
);
"""

#: Stock a fresh database starts with. SKU-SOLDOUT is the SKU that is always out of stock.
CATALOG: dict[str, int] = {
    "SKU-BOOK": 1_000_000,
    "SKU-MUG": 1_000_000,
    "SKU-TSHIRT": 1_000_000,
    "SKU-POSTER": 1_000_000,
    "SKU-HOODIE": 1_000_000,
    "SKU-SOLDOUT": 0,
}


class StockLevel(WireModel):
    """Body of `PUT /stock/{sku}`."""

    available: int = Field(ge=0)


class StockEntry(BaseModel):
    """Stock of one SKU."""

    sku: str
    available: int


def create_app(data_dir: Path, faults: FaultSettings = NO_FAULTS) -> FastAPI:
    """The Inventory service, its database `<data_dir>/inventory.db` seeded with `CATALOG`."""
    service = new_service(
        "inventory",
        data_dir,
        SCHEMA,
        faults,
        "Stock per SKU, and reservations of it per order.",
        forget=_forget,
    )
    _seed(service.db)
    app, db, effects = service.app, service.db, service.effects

    @app.post("/reservations", status_code=201, response_model=Reservation)
    async def reserve(request: ReserveRequest, key: IdempotencyKey) -> Response:
        """Reserve every item of an order, or none of them (409 OutOfStock, 422 UnknownSku)."""
        return await effects.apply(
            key,
            request,
            lambda conn, effect_key: _reserve(conn, effect_key, request),
            status=201,
            order_id=request.order_id,
        )

    @app.post("/reservations/release", response_model=UndoResult)
    async def release(request: UndoRequest, key: IdempotencyKey) -> Response:
        """Put the stock of the reservation made under `effect_key` back, once."""
        return await effects.undo(key, request, _release)

    @app.get("/reservations")
    def reservations(order_id: str | None = None) -> list[Reservation]:
        """Reservations, of one order if `order_id` is given."""
        with db.snapshot() as conn:
            return _reservations(conn, order_id)

    @app.get("/stock")
    def stock() -> dict[str, int]:
        """Units available per SKU."""
        with db.snapshot() as conn:
            rows = conn.execute("SELECT sku, available FROM stock ORDER BY sku").fetchall()
        return {row["sku"]: row["available"] for row in rows}

    @app.put("/stock/{sku}")
    async def set_stock(sku: Identifier, level: StockLevel) -> StockEntry:
        """Set the units available of a SKU, adding the SKU if it is new (an admin call)."""
        with db.transaction() as conn:
            before = conn.execute("SELECT available FROM stock WHERE sku = ?", (sku,)).fetchone()
            conn.execute(
                "INSERT INTO stock (sku, available) VALUES (?, ?)"
                " ON CONFLICT (sku) DO UPDATE SET available = excluded.available",
                (sku, level.available),
            )
            delta = level.available - (before["available"] if before else 0)
            conn.execute(
                "INSERT INTO stock_adjustments (sku, delta, reason) VALUES (?, ?, 'admin')",
                (sku, delta),
            )
        return StockEntry(sku=sku, available=level.available)

    return app


def _seed(db: Database) -> None:
    with db.transaction() as conn:
        if conn.execute("SELECT 1 FROM stock LIMIT 1").fetchone() is None:
            conn.executemany("INSERT INTO stock (sku, available) VALUES (?, ?)", CATALOG.items())
            conn.executemany(
                "INSERT INTO stock_adjustments (sku, delta, reason) VALUES (?, ?, 'seed')",
                CATALOG.items(),
            )


def _reserve(conn: sqlite3.Connection, key: str, request: ReserveRequest) -> Reservation:
    for item in request.items:
        # Check and take in one statement: the row can only go down to zero, never below.
        taken = conn.execute(
            "UPDATE stock SET available = available - ?1 WHERE sku = ?2 AND available >= ?1",
            (item.quantity, item.sku),
        ).rowcount
        if not taken:
            raise _refusal(conn, item)
    reservation = Reservation(
        reservation_id=new_id("res"),
        order_id=request.order_id,
        status="reserved",
        items=request.items,
    )
    conn.execute(
        "INSERT INTO reservations (reservation_id, effect_key, order_id, status)"
        " VALUES (?, ?, ?, ?)",
        (reservation.reservation_id, key, reservation.order_id, reservation.status),
    )
    conn.executemany(
        "INSERT INTO reservation_items (reservation_id, line, sku, quantity) VALUES (?, ?, ?, ?)",
        [
            (reservation.reservation_id, line, item.sku, item.quantity)
            for line, item in enumerate(request.items)
        ],
    )
    return reservation


def _refusal(conn: sqlite3.Connection, item: LineItem) -> Refused:
    row = conn.execute("SELECT available FROM stock WHERE sku = ?", (item.sku,)).fetchone()
    if row is None:
        return Refused(UNKNOWN_SKU, f"unknown SKU {item.sku}")
    return Refused(
        OUT_OF_STOCK,
        f"{item.sku} is out of stock: {item.quantity} wanted, {row['available']} available",
    )


def _release(conn: sqlite3.Connection, effect_key: str) -> UndoResult:
    result, released_now = undo_record(
        conn, "reservations", "reservation_id", effect_key, "released"
    )
    if released_now:
        conn.execute(
            "UPDATE stock SET available = available + ("
            "    SELECT SUM(quantity) FROM reservation_items AS i"
            "    WHERE i.reservation_id = ?1 AND i.sku = stock.sku)"
            " WHERE sku IN (SELECT sku FROM reservation_items WHERE reservation_id = ?1)",
            (result.id,),
        )
    return result


def _forget(conn: sqlite3.Connection, orders: str, horizon: str) -> None:
    reservations = f"SELECT reservation_id FROM reservations WHERE order_id IN ({OF_ORDERS})"
    # An ended order's reservation still holding stock is a confirmed order's: its units left.
    conn.execute(
        "INSERT INTO fulfilled (sku, units) SELECT sku, SUM(quantity) FROM reservation_items"
        f" WHERE reservation_id IN ({reservations} AND status = 'reserved') GROUP BY sku"
        " ON CONFLICT (sku) DO UPDATE SET units = units + excluded.units",
        (orders,),
    )
    conn.execute(
        f"DELETE FROM reservation_items WHERE reservation_id IN ({reservations})", (orders,)
    )
    rows_of_orders("reservations")(conn, orders, horizon)


def _reservations(conn: sqlite3.Connection, order_id: str | None) -> list[Reservation]:
    selected = "SELECT reservation_id FROM reservations WHERE ?1 IS NULL OR order_id = ?1"
    items: dict[str, list[LineItem]] = {}
    for row in conn.execute(
        f"SELECT reservation_id, sku, quantity FROM reservation_items"
        f" WHERE reservation_id IN ({selected}) ORDER BY reservation_id, line",
        (order_id,),
    ):
        items.setdefault(row["reservation_id"], []).append(
            LineItem(sku=row["sku"], quantity=row["quantity"])
        )
    return [
        Reservation(
            reservation_id=row["reservation_id"],
            order_id=row["order_id"],
            status=row["status"],
            items=items.get(row["reservation_id"], []),
        )
        for row in conn.execute(
            "SELECT reservation_id, order_id, status FROM reservations"
            " WHERE ?1 IS NULL OR order_id = ?1 ORDER BY created_at, reservation_id",
            (order_id,),
        )
    ]
