"""The stand-in services over real HTTP, each test with fresh databases."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from services.faults import FaultSettings
from tests.support.services_fixture import ADDRESS, running_services


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def client(data_dir: Path) -> Iterator[httpx.Client]:
    with (
        running_services(data_dir) as base_url,
        httpx.Client(base_url=base_url, timeout=10) as client,
    ):
        yield client


def post(client: httpx.Client, path: str, body: dict[str, Any], key: str) -> httpx.Response:
    return client.post(path, json=body, headers={"Idempotency-Key": key})


def reserve_body(order_id: str = "o-1", quantities: dict[str, int] | None = None) -> dict[str, Any]:
    items = [{"sku": sku, "quantity": n} for sku, n in (quantities or {"SKU-BOOK": 1}).items()]
    return {"order_id": order_id, "items": items}


def charge_body(
    order_id: str = "o-1", token: str = "tok_visa", amount: int = 2500
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer_id": "cust-1",
        "amount": amount,
        "currency": "EUR",
        "token": token,
    }


def shipment_body(order_id: str = "o-1", postal_code: str = "SW1Y 4JH") -> dict[str, Any]:
    address = {**ADDRESS, "postal_code": postal_code}
    return {"order_id": order_id, "items": [{"sku": "SKU-BOOK", "quantity": 1}], "address": address}


def confirm_body(order_id: str = "o-1", customer_id: str = "cust-1") -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer_id": customer_id,
        "amount": 2500,
        "currency": "EUR",
        "reservation_id": "res_1",
        "charge_id": "ch_1",
        "shipment_id": "shp_1",
    }


def set_stock(client: httpx.Client, sku: str, available: int) -> None:
    client.put(f"/inventory/stock/{sku}", json={"available": available}).raise_for_status()


def stock(client: httpx.Client, sku: str) -> int:
    value: int = client.get("/inventory/stock").json()[sku]
    return value


def reservations(client: httpx.Client, order_id: str = "o-1") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(
        "/inventory/reservations", params={"order_id": order_id}
    ).json()
    return found


def set_faults(client: httpx.Client, service: str, **settings: Any) -> None:
    client.put(f"/{service}/admin/faults", json=settings).raise_for_status()


def assert_refused(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    message: str = response.json()["message"]
    return message


# --- Inventory -----------------------------------------------------------------------------


def test_healthz_and_seeded_catalog(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    catalog = client.get("/inventory/stock").json()
    assert catalog["SKU-BOOK"] == 1_000_000
    assert catalog["SKU-SOLDOUT"] == 0


def test_reserve_then_release_restores_stock_exactly(client: httpx.Client) -> None:
    set_stock(client, "SKU-MUG", 100)
    set_stock(client, "SKU-BOOK", 50)

    reserved = post(
        client,
        "/inventory/reservations",
        reserve_body(quantities={"SKU-MUG": 3, "SKU-BOOK": 5}),
        "k1",
    )
    assert reserved.status_code == 201
    assert reserved.json()["status"] == "reserved"
    assert reserved.json()["reservation_id"].startswith("res_")
    assert (stock(client, "SKU-MUG"), stock(client, "SKU-BOOK")) == (97, 45)

    released = post(client, "/inventory/reservations/release", {"effect_key": "k1"}, "k1:undo")
    assert released.status_code == 200
    assert released.json() == {
        "effect_key": "k1",
        "status": "released",
        "id": reserved.json()["reservation_id"],
    }
    assert (stock(client, "SKU-MUG"), stock(client, "SKU-BOOK")) == (100, 50)
    assert [r["status"] for r in reservations(client)] == ["released"]

    # Releasing again, even under another key, gives nothing back twice.
    again = post(client, "/inventory/reservations/release", {"effect_key": "k1"}, "other")
    assert again.json()["status"] == "released"
    assert (stock(client, "SKU-MUG"), stock(client, "SKU-BOOK")) == (100, 50)


def test_out_of_stock_is_all_or_nothing(client: httpx.Client) -> None:
    set_stock(client, "SKU-BOOK", 10)
    response = post(
        client,
        "/inventory/reservations",
        reserve_body(quantities={"SKU-BOOK": 2, "SKU-SOLDOUT": 1}),
        "k1",
    )
    assert "SKU-SOLDOUT" in assert_refused(response, 409, "OutOfStock")
    assert stock(client, "SKU-BOOK") == 10
    assert reservations(client) == []


def test_unknown_sku_is_refused(client: httpx.Client) -> None:
    response = post(
        client, "/inventory/reservations", reserve_body(quantities={"SKU-NOPE": 1}), "k1"
    )
    assert "SKU-NOPE" in assert_refused(response, 422, "UnknownSku")


def test_repeat_with_same_key_replays_with_no_second_effect(client: httpx.Client) -> None:
    set_stock(client, "SKU-BOOK", 10)
    first = post(client, "/inventory/reservations", reserve_body(quantities={"SKU-BOOK": 4}), "k1")
    second = post(client, "/inventory/reservations", reserve_body(quantities={"SKU-BOOK": 4}), "k1")
    assert second.status_code == first.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert stock(client, "SKU-BOOK") == 6
    assert len(reservations(client)) == 1


def test_same_key_with_another_body_is_refused(client: httpx.Client) -> None:
    set_stock(client, "SKU-BOOK", 10)
    post(client, "/inventory/reservations", reserve_body(quantities={"SKU-BOOK": 1}), "k1")
    reused = post(client, "/inventory/reservations", reserve_body(quantities={"SKU-BOOK": 2}), "k1")
    assert_refused(reused, 422, "IdempotencyKeyReused")
    assert stock(client, "SKU-BOOK") == 9


def test_refusal_is_stored_and_replayed(client: httpx.Client) -> None:
    refused = post(
        client, "/inventory/reservations", reserve_body(quantities={"SKU-SOLDOUT": 1}), "k1"
    )
    assert_refused(refused, 409, "OutOfStock")
    set_stock(client, "SKU-SOLDOUT", 5)

    repeat = post(
        client, "/inventory/reservations", reserve_body(quantities={"SKU-SOLDOUT": 1}), "k1"
    )
    assert repeat.json() == refused.json()
    assert stock(client, "SKU-SOLDOUT") == 5


def test_missing_idempotency_key_is_invalid(client: httpx.Client) -> None:
    response = client.post("/inventory/reservations", json=reserve_body())
    assert "Idempotency-Key" in assert_refused(response, 422, "InvalidRequest")


def test_invalid_body_is_invalid_request(client: httpx.Client) -> None:
    response = post(client, "/inventory/reservations", {"order_id": "o-1", "items": []}, "k1")
    assert "items" in assert_refused(response, 422, "InvalidRequest")


def test_concurrent_reservations_never_oversell(client: httpx.Client) -> None:
    set_stock(client, "SKU-POSTER", 10)

    def reserve(n: int) -> int:
        body = reserve_body(f"o-{n}", {"SKU-POSTER": 1})
        return post(client, "/inventory/reservations", body, f"k{n}").status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(reserve, range(20)))

    assert sorted(statuses) == [201] * 10 + [409] * 10
    assert stock(client, "SKU-POSTER") == 0
    assert len(client.get("/inventory/reservations").json()) == 10


def test_concurrent_repeats_of_one_key_take_effect_once(client: httpx.Client) -> None:
    set_stock(client, "SKU-POSTER", 100)

    def reserve(_: int) -> str:
        response = post(
            client, "/inventory/reservations", reserve_body(quantities={"SKU-POSTER": 3}), "k1"
        )
        reservation_id: str = response.json()["reservation_id"]
        return reservation_id

    with ThreadPoolExecutor(max_workers=10) as pool:
        ids = set(pool.map(reserve, range(10)))

    assert len(ids) == 1
    assert stock(client, "SKU-POSTER") == 97


def test_stock_survives_restart_and_is_not_reseeded(data_dir: Path) -> None:
    with running_services(data_dir) as base_url, httpx.Client(base_url=base_url) as client:
        set_stock(client, "SKU-BOOK", 7)
    with running_services(data_dir) as base_url, httpx.Client(base_url=base_url) as client:
        assert stock(client, "SKU-BOOK") == 7


# --- Compensation tombstones, for every service ----------------------------------------------

FORWARD_AND_UNDO = [
    pytest.param("/inventory/reservations", reserve_body(), "/inventory/reservations/release",
                 "/inventory/reservations", id="inventory"),
    pytest.param("/payment/charges", charge_body(), "/payment/charges/refund",
                 "/payment/charges", id="payment"),
    pytest.param("/shipping/shipments", shipment_body(), "/shipping/shipments/cancel",
                 "/shipping/shipments", id="shipping"),
    pytest.param("/orders/confirmations", confirm_body(), "/orders/confirmations/cancel",
                 "/orders/orders", id="orders"),
]  # fmt: skip


@pytest.mark.parametrize(("forward", "body", "undo", "records"), FORWARD_AND_UNDO)
def test_undo_before_forward_is_a_noop_that_refuses_the_late_forward(
    client: httpx.Client, forward: str, body: dict[str, Any], undo: str, records: str
) -> None:
    undone = post(client, undo, {"effect_key": "k1"}, "k1:undo")
    assert undone.status_code == 200
    assert undone.json() == {"effect_key": "k1", "status": "not_found", "id": None}

    late = post(client, forward, body, "k1")
    assert_refused(late, 409, "AlreadyCompensated")
    assert client.get(records).json() == []
    # Other keys are not affected by the tombstone.
    assert post(client, forward, body, "k2").status_code == 201


@pytest.mark.parametrize(("forward", "body", "undo", "records"), FORWARD_AND_UNDO)
def test_undo_after_forward_undoes_once(
    client: httpx.Client, forward: str, body: dict[str, Any], undo: str, records: str
) -> None:
    created = post(client, forward, body, "k1")
    assert created.status_code == 201
    first = post(client, undo, {"effect_key": "k1"}, "k1:undo")
    repeat = post(client, undo, {"effect_key": "k1"}, "k1:undo")
    assert first.status_code == repeat.status_code == 200
    assert repeat.json() == first.json()
    assert first.json()["status"] != "not_found"
    [record] = client.get(records).json()
    assert record["status"] == first.json()["status"]
    # The forward call's own repeat still answers what it did.
    assert post(client, forward, body, "k1").json() == created.json()


# --- Payment -----------------------------------------------------------------------------


def test_charge_and_refund_once(client: httpx.Client) -> None:
    charge = post(client, "/payment/charges", charge_body(amount=4200), "k1")
    assert charge.status_code == 201
    assert charge.json()["charge_id"].startswith("ch_")
    assert charge.json()["status"] == "charged"

    post(client, "/payment/charges/refund", {"effect_key": "k1"}, "k1:undo")
    post(client, "/payment/charges/refund", {"effect_key": "k1"}, "another-undo-key")

    [refund] = client.get("/payment/refunds", params={"order_id": "o-1"}).json()
    assert refund["refund_id"].startswith("re_")
    assert refund["charge_id"] == charge.json()["charge_id"]
    assert refund["amount"] == 4200
    [stored] = client.get("/payment/charges", params={"order_id": "o-1"}).json()
    assert stored["status"] == "refunded"


def test_repeated_charge_charges_once(client: httpx.Client) -> None:
    first = post(client, "/payment/charges", charge_body(), "k1")
    second = post(client, "/payment/charges", charge_body(), "k1")
    assert first.json() == second.json()
    assert len(client.get("/payment/charges").json()) == 1


@pytest.mark.parametrize("token", ["tok_declined", "declined-card-token"])
def test_declined_cards(client: httpx.Client, token: str) -> None:
    if token == "declined-card-token":
        tokenized = client.post(
            "/payment/tokens",
            json={"card_number": "4000000000000002", "exp_month": 12, "exp_year": 2099},
        )
        assert tokenized.status_code == 201
        assert tokenized.json()["last4"] == "0002"
        token = tokenized.json()["token"]
    response = post(client, "/payment/charges", charge_body(token=token), "k1")
    assert_refused(response, 402, "PaymentDeclined")
    assert client.get("/payment/charges").json() == []


def test_unknown_token_is_declined(client: httpx.Client) -> None:
    response = post(client, "/payment/charges", charge_body(token="tok_nope"), "k1")
    assert "unknown" in assert_refused(response, 402, "PaymentDeclined")


def test_tokenized_card_approves(client: httpx.Client) -> None:
    tokenized = client.post(
        "/payment/tokens",
        json={"card_number": "5555555555554444", "exp_month": 1, "exp_year": 2099},
    )
    assert tokenized.status_code == 201
    assert tokenized.json()["last4"] == "4444"
    assert tokenized.json()["brand"] == "mastercard"
    assert tokenized.json()["token"].startswith("tok_")
    charge = post(client, "/payment/charges", charge_body(token=tokenized.json()["token"]), "k1")
    assert charge.status_code == 201


@pytest.mark.parametrize(
    ("card_number", "exp_year"),
    [("4111111111111112", 2099), ("41111111x1111111", 2099), ("4111111111111111", 2001)],
    ids=["luhn", "not-digits", "expired"],
)
def test_bad_cards_are_refused_without_echo(
    client: httpx.Client, card_number: str, exp_year: int
) -> None:
    response = client.post(
        "/payment/tokens",
        json={"card_number": card_number, "exp_month": 1, "exp_year": exp_year},
    )
    assert_refused(response, 422, "InvalidRequest")
    assert card_number not in response.text


def test_card_numbers_are_never_stored_or_logged(client: httpx.Client, data_dir: Path) -> None:
    cards = ["4111111111111111", "4000000000000002"]
    with capture_logs() as logs:
        for n, card in enumerate(cards):
            tokenized = client.post(
                "/payment/tokens", json={"card_number": card, "exp_month": 1, "exp_year": 2099}
            )
            token = tokenized.json()["token"]
            post(client, "/payment/charges", charge_body(token=token), f"k{n}")

    stored = b"".join(path.read_bytes() for path in data_dir.glob("payment.db*"))
    assert b"tok_" in stored  # the tokens are there, so the files read are the right ones
    for card in cards:
        assert card.encode() not in stored
        assert not any(card in repr(entry) for entry in logs)
    assert logs  # the charges were logged


# --- Shipping and orders -----------------------------------------------------------------


def test_shipment_schedule_and_unserved_postal_code(client: httpx.Client) -> None:
    scheduled = post(client, "/shipping/shipments", shipment_body(), "k1")
    assert scheduled.status_code == 201
    assert scheduled.json()["shipment_id"].startswith("shp_")
    assert scheduled.json()["status"] == "scheduled"

    refused = post(client, "/shipping/shipments", shipment_body("o-2", postal_code="00000"), "k2")
    message = assert_refused(refused, 422, "ShippingUnavailable")
    assert ADDRESS["name"] not in message
    assert client.get("/shipping/shipments", params={"order_id": "o-2"}).json() == []


def test_confirm_and_blocked_customer(client: httpx.Client) -> None:
    confirmed = post(client, "/orders/confirmations", confirm_body(), "k1")
    assert confirmed.status_code == 201
    assert confirmed.json()["confirmation_id"].startswith("conf_")
    assert client.get("/orders/orders/o-1").json()["status"] == "confirmed"

    blocked = post(client, "/orders/confirmations", confirm_body("o-2", "cust-blocked"), "k2")
    assert_refused(blocked, 409, "ConfirmationRejected")
    assert_refused(client.get("/orders/orders/o-2"), 404, "NotFound")

    post(client, "/orders/confirmations/cancel", {"effect_key": "k1"}, "k1:undo")
    assert client.get("/orders/orders/o-1").json()["status"] == "cancelled"


# --- Faults --------------------------------------------------------------------------------


def test_fail_next_fails_before_any_effect(client: httpx.Client) -> None:
    set_stock(client, "SKU-BOOK", 10)
    set_faults(client, "inventory", fail_next=2)

    for _ in range(2):
        failed = post(client, "/inventory/reservations", reserve_body(), "k1")
        assert_refused(failed, 503, "InjectedFault")
    assert stock(client, "SKU-BOOK") == 10
    assert reservations(client) == []
    assert client.get("/inventory/admin/faults").json()["fail_next"] == 0

    assert post(client, "/inventory/reservations", reserve_body(), "k1").status_code == 201
    assert stock(client, "SKU-BOOK") == 9
    # Faults are per service: the others are unaffected.
    assert client.get("/payment/admin/faults").json()["fail_next"] == 0


def test_fail_after_commit_keeps_the_effect_and_a_retry_replays_it(client: httpx.Client) -> None:
    set_stock(client, "SKU-BOOK", 10)
    set_faults(client, "inventory", fail_next=1, fail_after_commit=True)

    lost = post(client, "/inventory/reservations", reserve_body(), "k1")
    assert_refused(lost, 503, "InjectedFault")
    assert stock(client, "SKU-BOOK") == 9
    [reservation] = reservations(client)

    retry = post(client, "/inventory/reservations", reserve_body(), "k1")
    assert retry.status_code == 201
    assert retry.json()["reservation_id"] == reservation["reservation_id"]
    assert stock(client, "SKU-BOOK") == 9


def test_error_rate_one_fails_every_mutating_call_but_not_reads(client: httpx.Client) -> None:
    set_faults(client, "payment", error_rate=1.0)
    for n in range(3):
        failed = post(client, "/payment/charges", charge_body(), f"k{n}")
        assert failed.status_code == 503
    assert client.get("/payment/charges").json() == []


def test_lost_answer_rate_one_commits_every_mutating_call_and_loses_its_answer(
    client: httpx.Client,
) -> None:
    set_faults(client, "payment", lost_answer_rate=1.0)
    for n in range(3):
        assert_refused(
            post(client, "/payment/charges", charge_body(), f"k{n}"), 503, "InjectedFault"
        )
    assert len(client.get("/payment/charges").json()) == 3


def test_an_error_and_a_lost_answer_rate_cannot_add_up_to_more_than_every_call(
    client: httpx.Client,
) -> None:
    response = client.put("/orders/admin/faults", json={"error_rate": 0.6, "lost_answer_rate": 0.5})
    assert_refused(response, 422, "InvalidRequest")
    assert "at most 1" in response.text


def test_latency_is_added_to_mutating_calls(client: httpx.Client) -> None:
    set_faults(client, "shipping", latency_ms=300)
    started = time.monotonic()
    assert post(client, "/shipping/shipments", shipment_body(), "k1").status_code == 201
    assert time.monotonic() - started >= 0.3


def test_delayed_calls_hold_no_thread(client: httpx.Client) -> None:
    # More calls than FastAPI's thread pool has threads (40): all are in flight at once, as
    # at a slow remote service, instead of the last ones queueing for a thread.
    in_flight = 50
    set_faults(client, "shipping", latency_ms=4000)
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        answers = [
            pool.submit(post, client, "/shipping/shipments", shipment_body(f"o-{n}"), f"k{n}")
            for n in range(in_flight)
        ]
        arrived = 0
        while arrived < in_flight:
            arrived = client.get("/shipping/admin/calls").json()["calls"]
            assert not any(answer.done() for answer in answers), f"answered with {arrived} in"
        assert [answer.result().status_code for answer in answers] == [201] * in_flight


def test_fault_settings_are_validated(client: httpx.Client) -> None:
    response = client.put("/orders/admin/faults", json={"error_rate": 1.5})
    assert_refused(response, 422, "InvalidRequest")


def test_faults_given_at_start(data_dir: Path) -> None:
    with (
        running_services(data_dir, FaultSettings(fail_next=1)) as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        assert post(client, "/orders/confirmations", confirm_body(), "k1").status_code == 503
        assert post(client, "/orders/confirmations", confirm_body(), "k1").status_code == 201
