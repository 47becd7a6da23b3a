"""The services forget an order's records a retention after its saga ended, and only then.

The services follow a real event log, as they do beside a worker: each order's last saga event
starts its retention. An order still running keeps everything whatever its age, and stock is
conserved across the forgetting (a confirmed order's reserved units are booked as fulfilled).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from domain.ids import idempotency_key, workflow_id_for
from infra.eventbus import open_event_bus
from ops.audit_data import read_service_records
from services.inventory import CATALOG
from services.payment import TEST_TOKENS
from tests.support.saga_events import Saga, confirmed, declined
from tests.support.services_fixture import ADDRESS, retentions, running_services
from workflows.order_steps import ORDER_STEPS, SERVICES

ITEMS = {"SKU-BOOK": 2, "SKU-MUG": 1}
CARD = {"card_number": "5555555555554444", "exp_month": 1, "exp_year": 2099}


def key(order_id: str, step: int) -> str:
    return idempotency_key(workflow_id_for(order_id), ORDER_STEPS[step].name)


def call(http: httpx.Client, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    answer = http.post(path, json=body, headers={"Idempotency-Key": key})
    assert answer.is_success, answer.text
    result: dict[str, Any] = answer.json()
    return result


def place(http: httpx.Client, order_id: str, steps: int) -> None:
    """Take the first `steps` steps of an order, as its saga would, with a card of its own."""
    items = [{"sku": sku, "quantity": n} for sku, n in ITEMS.items()]
    token = http.post("/payment/tokens", json=CARD).json()["token"]
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("/inventory/reservations", {"order_id": order_id, "items": items}),
        ("/payment/charges", {"order_id": order_id, "customer_id": "c-1", "amount": 2500,
                              "currency": "EUR", "token": token}),
        ("/shipping/shipments", {"order_id": order_id, "items": items, "address": ADDRESS}),
        ("/orders/confirmations", {"order_id": order_id, "customer_id": "c-1", "amount": 2500,
                                   "currency": "EUR", "reservation_id": "res_1",
                                   "charge_id": "ch_1", "shipment_id": "shp_1"}),
    ]  # fmt: skip
    for step, (path, body) in enumerate(bodies[:steps]):
        call(http, path, body, key(order_id, step))


def undo(http: httpx.Client, order_id: str, path: str, step: int) -> None:
    effect = key(order_id, step)
    call(http, path, {"effect_key": effect}, f"{effect}:undo")


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def keys_in(folder: Path) -> set[str]:
    """Every idempotency key and tombstone the services hold."""
    return {
        row[0]
        for name in SERVICES
        for table in ("idempotency", "tombstones")
        for row in rows(folder / f"{name}.db", f"SELECT * FROM {table}")
    }


def tokens(folder: Path) -> set[str]:
    return {row[0] for row in rows(folder / "payment.db", "SELECT token FROM tokens")}


def charged_token(folder: Path) -> str:
    [(token,)] = rows(folder / "payment.db", "SELECT token FROM charges")
    return str(token)


def wait_until(done: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "not forgotten in time"
        time.sleep(0.05)


def publish(bus_url: str, *sagas: Saga) -> None:
    async def publishing() -> None:
        bus = open_event_bus(bus_url)
        for saga in sagas:
            await bus.publish(saga.events)
        await bus.close()

    asyncio.run(publishing())


def test_ended_orders_are_forgotten_and_a_running_one_is_kept(tmp_path: Path) -> None:
    folder, log = tmp_path / "services", tmp_path / "events.db"
    bus_url = f"sqlite:///{log}"
    with (
        running_services(folder, event_bus=bus_url, retention=timedelta(seconds=2)) as url,
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        place(http, "kept-confirmed", 4)
        place(http, "kept-declined", 2)
        undo(http, "kept-declined", "/payment/charges/refund", 1)
        undo(http, "kept-declined", "/inventory/reservations/release", 0)
        place(http, "running", 2)  # no last event: its saga may still undo it, however old
        before = keys_in(folder)
        # Ended long ago: forgotten at the services' first pruning.
        publish(
            bus_url,
            confirmed("kept-confirmed", 2500, "EUR", 4),
            declined("kept-declined", 2500, 4),
        )

        wait_until(lambda: not http.get("/orders/orders").json())
        wait_until(lambda: not http.get("/shipping/shipments").json())
        wait_until(lambda: len(http.get("/payment/charges").json()) == 1)
        wait_until(lambda: len(http.get("/inventory/reservations").json()) == 1)

        assert [c["order_id"] for c in http.get("/payment/charges").json()] == ["running"]
        assert http.get("/payment/refunds").json() == []
        [kept] = http.get("/inventory/reservations").json()
        assert (kept["order_id"], kept["status"]) == ("running", "reserved")
        # A card's token goes once no charge names it and it is a retention old; the running
        # order's and the test cards' stay.
        wait_until(lambda: tokens(folder) == set(TEST_TOKENS) | {charged_token(folder)})
    running = {k for k in before if k.startswith(workflow_id_for("running") + ":")}
    assert len(running) == 2 and keys_in(folder) == running
    assert rows(folder / "inventory.db", "SELECT * FROM ended_orders") == []

    # Every unit is available, held by the running order, or left with the confirmed one.
    records = read_service_records(folder)
    held = Counter(ITEMS)
    for sku, start in CATALOG.items():
        assert records.starting_stock[sku] == start
        fulfilled = records.fulfilled.get(sku, 0)
        assert fulfilled == ITEMS.get(sku, 0)
        assert records.stock[sku] + held[sku] + fulfilled == start


async def test_an_order_is_kept_for_the_retention_after_its_end(tmp_path: Path) -> None:
    with running_services(tmp_path) as url, httpx.Client(base_url=url, timeout=10) as http:
        place(http, "recent", 4)
    ended = datetime.now(UTC)
    for retention in retentions(tmp_path):
        retention.ended("recent", ended)
        retention.ended("recent", ended + timedelta(hours=1))  # a redelivery keeps the first
        assert await retention.forget_ended_before(ended) == 0
    assert len(keys_in(tmp_path)) == len(ORDER_STEPS)
    for retention in retentions(tmp_path):
        assert await retention.forget_ended_before(ended + timedelta(seconds=1)) == 1
    assert keys_in(tmp_path) == set()
    assert read_service_records(tmp_path).order_ids() == set()
