"""Property: whatever is ordered and however the services misbehave, every saga ends confirmed or
fully compensated, and no stock or money appears or vanishes.

Hypothesis draws a few orders at a time (SKUs with stock, the sold-out SKU, an unknown SKU, a
scarce SKU that runs out as examples go on; an approved or declined card; a served or unserved
postal code; a normal or blocked customer) and a fault schedule per service (failures before or
after the effect, a small random error rate), places the orders concurrently against the real dev
server, worker and services, and checks what the services hold afterwards.

Stock is counted on SKUs that this test creates, and money on the orders it places, so tests
sharing the services cannot disturb the totals.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from activities.http import create_http_client
from domain.order import OrderRequest
from domain.saga import SagaState, SagaStatus
from infra.eventbus import EventBus
from infra.settings import ServiceUrls
from ops.stack import current_worker
from ordersaga.order_desk import start_saga
from tests.support.orders import (
    BLOCKED_CUSTOMER,
    DECLINED_TOKEN,
    FAST_POLICY,
    SOLD_OUT_SKU,
    UNSERVED_POSTAL_CODE,
    make_order,
    undone_after,
)
from tests.support.saga_checks import (
    assert_confirmed_once,
    assert_fully_undone,
    new_skus,
    quantities,
)
from tests.support.service_state import Services
from workflows import OrderSaga
from workflows.order_steps import SERVICES

PLENTIFUL_STOCK = 1_000_000
#: Runs out after a few examples, so that concurrent orders compete for the last units.
SCARCE_STOCK = 15
UNKNOWN_SKU = "SKU-NOT-IN-CATALOG"

#: Bound on one saga; FAST_POLICY's retries take a few seconds at worst.
SAGA_WITHIN_S = 60


@dataclass
class Catalogue:
    """The SKUs this test owns, and what it placed on them so far (across all examples)."""

    plentiful: list[str]
    scarce: str
    initial: dict[str, int]
    confirmed: list[OrderRequest] = field(default_factory=list)
    placed: list[OrderRequest] = field(default_factory=list)


@pytest.fixture(scope="module")
async def catalogue(services_url: str) -> AsyncIterator[Catalogue]:
    async with httpx.AsyncClient(base_url=services_url) as http:
        services = Services(http)
        plentiful = await new_skus(services, 4, PLENTIFUL_STOCK, prefix="SKU-P")
        (scarce,) = await new_skus(services, 1, SCARCE_STOCK, prefix="SKU-S")
    initial = dict.fromkeys(plentiful, PLENTIFUL_STOCK) | {scarce: SCARCE_STOCK}
    yield Catalogue(plentiful=plentiful, scarce=scarce, initial=initial)


@pytest.fixture(scope="module")
async def property_queue(
    client: Client, services_url: str, event_bus: EventBus
) -> AsyncIterator[str]:
    """An in-process worker with the real activities, on a task queue of this module's own."""
    task_queue = f"property-{uuid.uuid4().hex[:8]}"
    urls = ServiceUrls.from_base(services_url)
    async with (
        create_http_client() as http,
        current_worker(client, task_queue, http, urls, event_bus),
    ):
        yield task_queue


@dataclass(frozen=True)
class OrderSpec:
    """What to order, as drawn; SKUs are picked from the catalogue when the order is made."""

    plentiful: list[tuple[int, int, int]]  # (catalogue index, quantity, unit price)
    scarce_quantity: int | None
    sold_out: bool
    unknown: bool
    line_order: list[int]  # a permutation of the lines
    declined: bool
    unserved: bool
    blocked: bool


def rarely() -> st.SearchStrategy[bool]:
    """True one time in four; shrinks to False (the well-behaved value)."""
    return st.sampled_from([False, False, False, True])


@st.composite
def order_specs(draw: st.DrawFn) -> OrderSpec:
    indexes = draw(st.lists(st.integers(0, 3), min_size=0, max_size=4, unique=True))
    plentiful = [(i, draw(st.integers(1, 5)), draw(st.integers(1, 10_000))) for i in indexes]
    scarce_quantity = draw(st.none() | st.integers(1, 4))
    sold_out = draw(rarely())
    unknown = draw(rarely())
    lines = len(plentiful) + (scarce_quantity is not None) + sold_out + unknown
    if lines == 0:
        plentiful = [(0, 1, 100)]
        lines = 1
    return OrderSpec(
        plentiful=plentiful,
        scarce_quantity=scarce_quantity,
        sold_out=sold_out,
        unknown=unknown,
        line_order=draw(st.permutations(range(lines))),
        declined=draw(rarely()),
        unserved=draw(rarely()),
        blocked=draw(rarely()),
    )


#: A service's misbehaviour: failures before or after its effect, and a small error rate.
service_faults = st.fixed_dictionaries(
    {
        "fail_next": st.integers(0, 3),
        "fail_after_commit": st.booleans(),
        "error_rate": st.sampled_from([0.0, 0.0, 0.05, 0.1]),
    }
)

#: Per service, well-behaved (two times in three: each injected failure costs the saga about a
#: second, the dev server's retry dispatch) or misbehaving.
fault_schedules = st.fixed_dictionaries(
    {
        service: st.sampled_from([False, False, True]).flatmap(
            lambda misbehaves: service_faults if misbehaves else st.just({})
        )
        for service in SERVICES
    }
)


def make_spec_order(spec: OrderSpec, catalogue: Catalogue) -> OrderRequest:
    lines = [
        {"sku": catalogue.plentiful[index], "quantity": quantity, "unit_price": price}
        for index, quantity, price in spec.plentiful
    ]
    if spec.scarce_quantity is not None:
        lines.append({"sku": catalogue.scarce, "quantity": spec.scarce_quantity, "unit_price": 700})
    if spec.sold_out:
        lines.append({"sku": SOLD_OUT_SKU, "quantity": 1, "unit_price": 500})
    if spec.unknown:
        lines.append({"sku": UNKNOWN_SKU, "quantity": 1, "unit_price": 300})
    address = make_order().shipping_address.model_dump()
    return make_order(
        items=[lines[i] for i in spec.line_order],
        payment=(
            {"token": DECLINED_TOKEN, "last4": "0002"}
            if spec.declined
            else {"token": "tok_visa", "last4": "4242"}
        ),
        shipping_address=address | ({"postal_code": UNSERVED_POSTAL_CODE} if spec.unserved else {}),
        customer_id=BLOCKED_CUSTOMER if spec.blocked else "cust-1",
        policy=FAST_POLICY,
    )


def possible_endings(order: OrderRequest, catalogue: Catalogue) -> set[str | None]:
    """How the saga may end when no call fails for good: the refusal's type, or None (confirmed).

    Inventory refuses at the first line it cannot reserve; the scarce SKU may or may not be
    short, depending on the orders that got to it first.
    """
    endings: set[str | None] = set()
    for item in order.items:
        if item.sku == SOLD_OUT_SKU:
            return endings | {"OutOfStock"}
        if item.sku == UNKNOWN_SKU:
            return endings | {"UnknownSku"}
        if item.sku == catalogue.scarce:
            endings.add("OutOfStock")
    if order.payment.token == DECLINED_TOKEN:
        return endings | {"PaymentDeclined"}
    if order.shipping_address.postal_code == UNSERVED_POSTAL_CODE:
        return endings | {"ShippingUnavailable"}
    if order.customer_id == BLOCKED_CUSTOMER:
        return endings | {"ConfirmationRejected"}
    return endings | {None}


#: The step each refusal type stops the saga at.
REFUSED_AT = {
    "OutOfStock": "reserve_inventory",
    "UnknownSku": "reserve_inventory",
    "PaymentDeclined": "charge_payment",
    "ShippingUnavailable": "schedule_shipment",
    "ConfirmationRejected": "confirm_order",
}


async def run_saga(
    client: Client, task_queue: str, order: OrderRequest
) -> tuple[str | None, SagaStatus]:
    """Place the order and wait for its saga's end: the failure type (None if confirmed), status."""
    handle = await start_saga(client, order, task_queue)
    failure_type = None
    try:
        async with asyncio.timeout(SAGA_WITHIN_S):
            await handle.result()
    except WorkflowFailureError as err:
        assert isinstance(err.cause, ApplicationError)
        failure_type = err.cause.type
    except TimeoutError:
        status = await handle.query(OrderSaga.status)
        pytest.fail(f"saga of {order.order_id} did not end: {status.model_dump_json()}")
    return failure_type, await handle.query(OrderSaga.status)


# The `services` and other fixtures are shared by all examples, which is what is wanted: the
# catalogue accumulates across examples on purpose, and the fault switches, the one per-example
# state, are reset by each example itself.
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(specs=st.lists(order_specs(), min_size=1, max_size=4), faults=fault_schedules)
async def test_every_saga_ends_confirmed_or_fully_compensated_and_totals_are_conserved(
    client: Client,
    property_queue: str,
    services: Services,
    catalogue: Catalogue,
    specs: list[OrderSpec],
    faults: dict[str, dict[str, Any]],
) -> None:
    orders = [make_spec_order(spec, catalogue) for spec in specs]
    stock_before = await services.stock()
    catalogue.placed += orders
    try:
        for service, switches in faults.items():
            await services.set_faults(service, **switches)
        endings = await asyncio.gather(
            *(run_saga(client, property_queue, order) for order in orders)
        )
    finally:
        await services.reset_faults()
    confirmed = [order for order, (failure, _) in zip(orders, endings, strict=True) if not failure]
    catalogue.confirmed += confirmed

    no_lasting_faults = all(not switches.get("error_rate") for switches in faults.values())
    for order, (failure_type, status) in zip(orders, endings, strict=True):
        effects = await services.effects(order.order_id)
        if failure_type is None:
            assert status.state == "OrderConfirmed"
            assert_confirmed_once(effects, order)
        else:
            assert status.state in (SagaState.FAILED, SagaState.ABORTED)
            assert_fully_undone(effects)
            if status.state == SagaState.FAILED:
                # Failed: nothing was taken, so nothing had to be undone.
                assert status.compensations_run == []
                assert (effects.reservations, effects.charges, effects.shipments) == ([], [], [])
        if no_lasting_faults:
            # At most 3 injected failures per service, 4 attempts per call: only refusals end
            # a saga, and each undoes exactly the steps before the refused one, in reverse.
            assert failure_type in possible_endings(order, catalogue)
            if failure_type is not None:
                assert status.compensations_run == undone_after(REFUSED_AT[failure_type])

    # This example's orders alone moved this test's stock ...
    stock_after = await services.stock()
    moved = {sku: stock_before[sku] - stock_after[sku] for sku in catalogue.initial}
    assert moved == totals_per_sku(confirmed, catalogue)
    # ... and every example so far together left stock and money as their confirmed orders say.
    await assert_totals_conserved(services, catalogue)


def totals_per_sku(orders: list[OrderRequest], catalogue: Catalogue) -> dict[str, int]:
    """Units per catalogue SKU of `orders` together, zero included."""
    total: Counter[str] = Counter()
    for order in orders:
        total += quantities(order)
    return {sku: total[sku] for sku in catalogue.initial}


async def assert_totals_conserved(services: Services, catalogue: Catalogue) -> None:
    """Across every example so far: stock taken and money kept are exactly the confirmed orders'."""
    stock = await services.stock()
    taken = {sku: catalogue.initial[sku] - stock[sku] for sku in catalogue.initial}
    assert taken == totals_per_sku(catalogue.confirmed, catalogue)

    ours = {order.order_id for order in catalogue.placed}
    charges = await services.http.get("/payment/charges")
    refunds = await services.http.get("/payment/refunds")
    charged = sum(c["amount"] for c in charges.raise_for_status().json() if c["order_id"] in ours)
    refunded = sum(r["amount"] for r in refunds.raise_for_status().json() if r["order_id"] in ours)
    assert charged - refunded == sum(order.total for order in catalogue.confirmed)
