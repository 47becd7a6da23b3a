"""The activities against the real services, run with Temporal's ActivityEnvironment."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.http import (
    SERVICE_UNAVAILABLE,
    UNEXPECTED_RESPONSE,
    ServiceClient,
    create_http_client,
)
from domain.ids import idempotency_key, workflow_id_for
from domain.order import Address, OrderItem
from infra.settings import ServiceUrls
from ports.contract import CompensationInput, StepResult, UndoRequest, line_items
from ports.inventory import ReserveInventoryInput, ReserveRequest
from ports.orders import ConfirmOrderInput, ConfirmRequest
from ports.payment import ChargePaymentInput, ChargeRequest
from ports.shipping import ScheduleShipmentInput, ShipmentRequest
from tests.support.orders import COMPENSATIONS, STEPS
from worker import order_activities

ORDER_ID = "o-1"
WORKFLOW_ID = workflow_id_for(ORDER_ID)
ADDRESS = Address(
    name="Ada Lovelace",
    line1="12 St James's Square",
    city="London",
    postal_code="SW1Y 4JH",
    country="GB",
)


@pytest.fixture
def acts(http: aiohttp.ClientSession, base_url: str) -> dict[str, Callable[..., Any]]:
    """The activities by the name they are registered under."""
    built = order_activities(http, ServiceUrls.from_base(base_url))
    return {activity_name(fn): fn for fn in built}


def activity_name(fn: Callable[..., Any]) -> str:
    name = activity._Definition.must_from_callable(fn).name  # the name a Worker registers
    assert name is not None
    return name


async def run(fn: Callable[..., Any], arg: Any) -> Any:
    return await ActivityEnvironment().run(fn, arg)


def key(step: str) -> str:
    return idempotency_key(WORKFLOW_ID, step)


def items(sku: str = "SKU-BOOK") -> list[OrderItem]:
    return [OrderItem(sku=sku, quantity=2, unit_price=1250)]


def reserve_input(sku: str = "SKU-BOOK") -> ReserveInventoryInput:
    return ReserveInventoryInput(
        idempotency_key=key("reserve_inventory"),
        request=ReserveRequest(order_id=ORDER_ID, items=line_items(items(sku))),
    )


def charge_input(token: str = "tok_visa") -> ChargePaymentInput:
    return ChargePaymentInput(
        idempotency_key=key("charge_payment"),
        request=ChargeRequest(
            order_id=ORDER_ID, customer_id="cust-1", amount=2500, currency="EUR", token=token
        ),
    )


def shipment_input(postal_code: str = "SW1Y 4JH") -> ScheduleShipmentInput:
    return ScheduleShipmentInput(
        idempotency_key=key("schedule_shipment"),
        request=ShipmentRequest(
            order_id=ORDER_ID,
            items=line_items(items()),
            address=ADDRESS.model_copy(update={"postal_code": postal_code}),
        ),
    )


def confirm_input(customer_id: str = "cust-1") -> ConfirmOrderInput:
    return ConfirmOrderInput(
        idempotency_key=key("confirm_order"),
        request=ConfirmRequest(
            order_id=ORDER_ID,
            customer_id=customer_id,
            amount=2500,
            currency="EUR",
            reservation_id="res_1",
            charge_id="ch_1",
            shipment_id="shp_1",
        ),
    )


def undo_input(step: str) -> CompensationInput:
    return CompensationInput(order_id=ORDER_ID, effect_key=key(step))


async def get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, raise_for_status=True) as response:
        return await response.json()


def test_the_worker_registers_every_step_compensation_and_the_last_events_carrier(
    acts: dict[str, Callable[..., Any]],
) -> None:
    assert set(acts) == set(STEPS) | set(COMPENSATIONS) | {"publish_events"}


async def test_forward_steps_then_compensations(
    acts: dict[str, Callable[..., Any]], http: aiohttp.ClientSession, base_url: str
) -> None:
    stock_before = (await get(http, f"{base_url}/inventory/stock"))["SKU-BOOK"]

    created = [
        await run(acts["reserve_inventory"], reserve_input()),
        await run(acts["charge_payment"], charge_input()),
        await run(acts["schedule_shipment"], shipment_input()),
        await run(acts["confirm_order"], confirm_input()),
    ]
    assert all(isinstance(result, StepResult) for result in created)
    assert [r.id.split("_")[0] for r in created] == ["res", "ch", "shp", "conf"]
    assert (await get(http, f"{base_url}/inventory/stock"))["SKU-BOOK"] == stock_before - 2

    for compensation, step in [
        ("cancel_order", "confirm_order"),
        ("cancel_shipment", "schedule_shipment"),
        ("refund_payment", "charge_payment"),
        ("release_inventory", "reserve_inventory"),
    ]:
        assert await run(acts[compensation], undo_input(step)) is None

    assert (await get(http, f"{base_url}/inventory/stock"))["SKU-BOOK"] == stock_before
    [refund] = await get(http, f"{base_url}/payment/refunds?order_id={ORDER_ID}")
    assert (refund["charge_id"], refund["amount"]) == (created[1].id, 2500)
    [shipment] = await get(http, f"{base_url}/shipping/shipments?order_id={ORDER_ID}")
    assert shipment["status"] == "cancelled"
    order = await get(http, f"{base_url}/orders/orders/{ORDER_ID}")
    assert order["status"] == "cancelled"


REFUSALS = {
    "out-of-stock": ("reserve_inventory", lambda: reserve_input("SKU-SOLDOUT"), "OutOfStock"),
    "unknown-sku": ("reserve_inventory", lambda: reserve_input("SKU-NOPE"), "UnknownSku"),
    "declined": ("charge_payment", lambda: charge_input("tok_declined"), "PaymentDeclined"),
    "unknown-token": ("charge_payment", lambda: charge_input("tok_nope"), "PaymentDeclined"),
    "unserved": ("schedule_shipment", lambda: shipment_input("00000"), "ShippingUnavailable"),
    "blocked": ("confirm_order", lambda: confirm_input("cust-blocked"), "ConfirmationRejected"),
}


@pytest.mark.parametrize(("step", "make_input", "refusal"), REFUSALS.values(), ids=REFUSALS.keys())
async def test_refusals_are_non_retryable_and_typed(
    acts: dict[str, Callable[..., Any]],
    step: str,
    make_input: Callable[[], Any],
    refusal: str,
) -> None:
    with pytest.raises(ApplicationError) as raised:
        await run(acts[step], make_input())
    assert raised.value.type == refusal
    assert raised.value.non_retryable


async def test_service_error_is_retryable_and_a_retry_succeeds(
    acts: dict[str, Callable[..., Any]], http: aiohttp.ClientSession, base_url: str
) -> None:
    (await http.put(f"{base_url}/payment/admin/faults", json={"fail_next": 1})).raise_for_status()

    with pytest.raises(ApplicationError) as raised:
        await run(acts["charge_payment"], charge_input())
    assert raised.value.type == SERVICE_UNAVAILABLE
    assert not raised.value.non_retryable
    assert raised.value.details[0] == {"status": 503, "code": "InjectedFault"}
    assert await get(http, f"{base_url}/payment/charges") == []

    charged = await run(acts["charge_payment"], charge_input())
    assert [c["charge_id"] for c in await get(http, f"{base_url}/payment/charges")] == [charged.id]


async def test_lost_answer_then_retry_has_one_effect(
    acts: dict[str, Callable[..., Any]], http: aiohttp.ClientSession, base_url: str
) -> None:
    faults = {"fail_next": 1, "fail_after_commit": True}
    (await http.put(f"{base_url}/inventory/admin/faults", json=faults)).raise_for_status()
    stock_before = (await get(http, f"{base_url}/inventory/stock"))["SKU-BOOK"]

    with pytest.raises(ApplicationError) as raised:
        await run(acts["reserve_inventory"], reserve_input())
    assert not raised.value.non_retryable
    reserved = await run(acts["reserve_inventory"], reserve_input())

    [reservation] = await get(http, f"{base_url}/inventory/reservations?order_id={ORDER_ID}")
    assert reservation["reservation_id"] == reserved.id
    assert (await get(http, f"{base_url}/inventory/stock"))["SKU-BOOK"] == stock_before - 2


async def test_same_key_twice_has_one_effect(
    acts: dict[str, Callable[..., Any]], http: aiohttp.ClientSession, base_url: str
) -> None:
    first = await run(acts["charge_payment"], charge_input())
    second = await run(acts["charge_payment"], charge_input())
    assert first == second
    assert len(await get(http, f"{base_url}/payment/charges")) == 1

    await run(acts["refund_payment"], undo_input("charge_payment"))
    await run(acts["refund_payment"], undo_input("charge_payment"))
    assert len(await get(http, f"{base_url}/payment/refunds")) == 1


async def test_compensation_first_refuses_the_late_forward_call(
    acts: dict[str, Callable[..., Any]], http: aiohttp.ClientSession, base_url: str
) -> None:
    assert await run(acts["cancel_shipment"], undo_input("schedule_shipment")) is None

    with pytest.raises(ApplicationError) as raised:
        await run(acts["schedule_shipment"], shipment_input())
    assert raised.value.type == "AlreadyCompensated"
    assert raised.value.non_retryable
    assert await get(http, f"{base_url}/shipping/shipments") == []


async def test_timeout_is_retryable_and_the_retry_has_one_effect(
    acts: dict[str, Callable[..., Any]], http: aiohttp.ClientSession, base_url: str
) -> None:
    faults = {"latency_ms": 500}
    (await http.put(f"{base_url}/orders/admin/faults", json=faults)).raise_for_status()
    urls = ServiceUrls.from_base(base_url)
    async with create_http_client(timeout_s=0.1) as impatient:
        activities = {activity_name(fn): fn for fn in order_activities(impatient, urls)}
        with pytest.raises(ApplicationError) as raised:
            await run(activities["confirm_order"], confirm_input())
    assert raised.value.type == SERVICE_UNAVAILABLE
    assert not raised.value.non_retryable

    # The timed-out call may still commit; with patience, the retry answers the same record.
    confirmed = await run(acts["confirm_order"], confirm_input())
    assert [o["confirmation_id"] for o in await get(http, f"{base_url}/orders/orders")] == [
        confirmed.id
    ]


async def test_connection_refused_is_retryable(http: aiohttp.ClientSession) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, so no one else takes the port, but not listening
    port = closed.getsockname()[1]
    try:
        client = ServiceClient(http, f"http://127.0.0.1:{port}/payment")
        with pytest.raises(ApplicationError) as raised:
            await client.post("/charges", UndoRequest(effect_key="k0"), "k1")
    finally:
        closed.close()
    assert raised.value.type == SERVICE_UNAVAILABLE
    assert not raised.value.non_retryable


async def test_answer_without_code_is_retryable(http: aiohttp.ClientSession, base_url: str) -> None:
    client = ServiceClient(http, f"{base_url}/no-such-service")
    with pytest.raises(ApplicationError) as raised:
        await client.post("/charges", UndoRequest(effect_key="k0"), "k1")
    assert raised.value.type == UNEXPECTED_RESPONSE
    assert not raised.value.non_retryable
    assert raised.value.details[0]["status"] == 404
