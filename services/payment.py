"""The Payment service: card tokens, charges in minor units, and refunds of whole charges."""

from __future__ import annotations

import datetime
import json
import sqlite3
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel

from domain.order import CardDetails
from infra.sqlite import Database, new_id
from ports.contract import INVALID_REQUEST, UndoRequest, UndoResult
from ports.payment import PAYMENT_DECLINED, Charge, ChargeRequest
from services.base import IdempotencyKey, new_service
from services.effects import undo_record
from services.errors import Refused
from services.faults import NO_FAULTS, FaultSettings
from services.retention import OF_ORDERS, rows_of_orders

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    token       TEXT PRIMARY KEY,
    last4       TEXT NOT NULL,
    brand       TEXT NOT NULL,
    declines    INTEGER NOT NULL CHECK (declines IN (0, 1)),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS charges (
    charge_id   TEXT PRIMARY KEY,
    effect_key  TEXT NOT NULL UNIQUE,
    order_id    TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount > 0),
    currency    TEXT NOT NULL,
    token       TEXT NOT NULL REFERENCES tokens (token),
    status      TEXT NOT NULL CHECK (status IN ('charged', 'refunded')),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS charges_by_order ON charges (order_id);
CREATE INDEX IF NOT EXISTS charges_by_token ON charges (token);
CREATE INDEX IF NOT EXISTS tokens_by_time ON tokens (created_at);
CREATE TABLE IF NOT EXISTS refunds (
    refund_id   TEXT PRIMARY KEY,
    charge_id   TEXT NOT NULL UNIQUE REFERENCES charges (charge_id),
    amount      INTEGER NOT NULL CHECK (amount > 0),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
"""

#: The test card number whose token is always declined.
DECLINED_CARD_NUMBER = "4000000000000002"

#: Tokens every database has: token -> (last4, brand, always declined).
TEST_TOKENS: dict[str, tuple[str, str, bool]] = {
    "tok_visa": ("4242", "visa", False),
    "tok_declined": ("0002", "visa", True),
}


class CardToken(BaseModel):
    """A card as the shop keeps it."""

    token: str
    last4: str
    brand: str


class Refund(BaseModel):
    """The refund of a whole charge."""

    refund_id: str
    charge_id: str
    order_id: str
    amount: int
    currency: str


def create_app(data_dir: Path, faults: FaultSettings = NO_FAULTS) -> FastAPI:
    """The Payment service, its database `<data_dir>/payment.db` seeded with `TEST_TOKENS`."""
    service = new_service(
        "payment", data_dir, SCHEMA, faults, "Card tokens, charges and refunds.", forget=_forget
    )
    _seed(service.db)
    app, db, effects = service.app, service.db, service.effects

    @app.post("/tokens", status_code=201)
    async def tokenize(card: CardDetails) -> CardToken:
        """Exchange a card number for a token; only the token, last 4 digits and brand are kept.

        Not an effect of the saga, so no `Idempotency-Key` and no injected faults: tokenizing a
        card twice just gives two tokens for it, and no key fingerprint is derived from a
        card number.
        """
        today = datetime.date.today()
        if (card.exp_year, card.exp_month) < (today.year, today.month):
            raise Refused(INVALID_REQUEST, "the card has expired")
        token = CardToken(
            token=new_id("tok"),
            last4=card.card_number.last4,
            brand=card.card_number.brand.value.lower(),
        )
        with db.transaction() as conn:
            conn.execute(
                "INSERT INTO tokens (token, last4, brand, declines) VALUES (?, ?, ?, ?)",
                (token.token, token.last4, token.brand, card.card_number == DECLINED_CARD_NUMBER),
            )
        return token

    @app.post("/charges", status_code=201, response_model=Charge)
    async def charge(request: ChargeRequest, key: IdempotencyKey) -> Response:
        """Charge an amount to a card token (402 PaymentDeclined if declined or unknown)."""
        return await effects.apply(
            key,
            request,
            lambda conn, effect_key: _charge(conn, effect_key, request),
            status=201,
            order_id=request.order_id,
        )

    @app.post("/charges/refund", response_model=UndoResult)
    async def refund(request: UndoRequest, key: IdempotencyKey) -> Response:
        """Refund the whole charge made under `effect_key`, once."""
        return await effects.undo(key, request, _refund)

    @app.get("/charges")
    def charges(order_id: str | None = None) -> list[Charge]:
        """Charges, of one order if `order_id` is given."""
        with db.snapshot() as conn:
            rows = conn.execute(
                "SELECT charge_id, order_id, customer_id, amount, currency, status FROM charges"
                " WHERE ?1 IS NULL OR order_id = ?1 ORDER BY created_at, charge_id",
                (order_id,),
            ).fetchall()
        return [Charge.model_validate(dict(row)) for row in rows]

    @app.get("/refunds")
    def refunds(order_id: str | None = None) -> list[Refund]:
        """Refunds, of one order's charges if `order_id` is given."""
        with db.snapshot() as conn:
            rows = conn.execute(
                "SELECT r.refund_id, r.charge_id, c.order_id, r.amount, c.currency"
                " FROM refunds AS r JOIN charges AS c USING (charge_id)"
                " WHERE ?1 IS NULL OR c.order_id = ?1 ORDER BY r.created_at, r.refund_id",
                (order_id,),
            ).fetchall()
        return [Refund.model_validate(dict(row)) for row in rows]

    return app


def _seed(db: Database) -> None:
    with db.transaction() as conn:
        conn.executemany(
            "INSERT OR IGNORE INTO tokens (token, last4, brand, declines) VALUES (?, ?, ?, ?)",
            [(token, *details) for token, details in TEST_TOKENS.items()],
        )


def _forget(conn: sqlite3.Connection, orders: str, horizon: str) -> None:
    conn.execute(
        "DELETE FROM refunds WHERE charge_id IN"
        f" (SELECT charge_id FROM charges WHERE order_id IN ({OF_ORDERS}))",
        (orders,),
    )
    rows_of_orders("charges")(conn, orders, horizon)
    # A card's token is kept while a charge names it, and a retention at least: an order's
    # saga charges it within moments of its making. The test cards stay.
    conn.execute(
        "DELETE FROM tokens WHERE created_at < ? AND token NOT IN (SELECT token FROM charges)"
        " AND token NOT IN (SELECT value FROM json_each(?))",
        (horizon, json.dumps(list(TEST_TOKENS))),
    )


def _charge(conn: sqlite3.Connection, key: str, request: ChargeRequest) -> Charge:
    row = conn.execute("SELECT declines FROM tokens WHERE token = ?", (request.token,)).fetchone()
    if row is None:
        raise Refused(PAYMENT_DECLINED, "unknown card token")
    if row["declines"]:
        raise Refused(PAYMENT_DECLINED, "the card was declined")
    charge = Charge(
        charge_id=new_id("ch"),
        order_id=request.order_id,
        customer_id=request.customer_id,
        amount=request.amount,
        currency=request.currency,
        status="charged",
    )
    conn.execute(
        "INSERT INTO charges"
        " (charge_id, effect_key, order_id, customer_id, amount, currency, token, status)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            charge.charge_id,
            key,
            charge.order_id,
            charge.customer_id,
            charge.amount,
            charge.currency,
            request.token,
            charge.status,
        ),
    )
    return charge


def _refund(conn: sqlite3.Connection, effect_key: str) -> UndoResult:
    result, refunded_now = undo_record(conn, "charges", "charge_id", effect_key, "refunded")
    if refunded_now:
        conn.execute(
            "INSERT INTO refunds (refund_id, charge_id, amount)"
            " SELECT ?, charge_id, amount FROM charges WHERE charge_id = ?",
            (new_id("re"), result.id),
        )
    return result
