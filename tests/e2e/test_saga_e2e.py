"""Every saga path end to end: real dev server, real worker, real services and databases.

Each test asserts what the services hold afterwards, not only what the workflow says.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from domain.order import OrderRequest
from domain.policy import SagaPolicy
from domain.saga import SagaState, SagaStatus
from ordersaga.order_desk import start_saga
from tests.support.orders import (
    BLOCKED_CUSTOMER,
    COMPENSATIONS,
    DECLINED_TOKEN,
    FAST_POLICY,
    SOLD_OUT_SKU,
    UNSERVED_POSTAL_CODE,
    make_order,
    on_path,
    undone_after,
)
from tests.support.saga_checks import assert_fully_undone, quantities
from tests.support.service_state import Services
from workflows import OrderSaga


async def place(
    client: Client, task_queue: str, order: OrderRequest
) -> tuple[ApplicationError | None, SagaStatus]:
    """Run the order's saga to its end; return its failure (if any) and final status."""
    handle = await start_saga(client, order, task_queue)
    failure = None
    try:
        await handle.result()
    except WorkflowFailureError as err:
        assert isinstance(err.cause, ApplicationError)
        failure = err.cause
    return failure, await handle.query(OrderSaga.status)


async def test_happy_path_confirms_with_one_effect_per_step(
    client: Client, saga_task_queue: str, services: Services
) -> None:
    order = make_order()
    stock_before = await services.stock()

    failure, status = await place(client, saga_task_queue, order)

    assert failure is None
    assert status.state == "OrderConfirmed"
    assert status.compensations_recorded == COMPENSATIONS
    assert status.compensations_run == []
    stock_after = await services.stock()
    assert Counter(stock_before) - Counter(stock_after) == quantities(order)
    effects = await services.effects(order.order_id)
    assert [r["status"] for r in effects.reservations] == ["reserved"]
    assert [(c["amount"], c["status"]) for c in effects.charges] == [(order.total, "charged")]
    assert effects.refunds == []
    assert [s["status"] for s in effects.shipments] == ["scheduled"]
    assert effects.record is not None and effects.record["status"] == "confirmed"
    assert effects.record["charge_id"] == status.ids["charge_id"] == effects.charges[0]["charge_id"]


async def test_inventory_refusal_fails_with_nothing_taken(
    client: Client, saga_task_queue: str, services: Services
) -> None:
    order = make_order(items=[{"sku": SOLD_OUT_SKU, "quantity": 1, "unit_price": 100}])
    stock_before = await services.stock()

    failure, status = await place(client, saga_task_queue, order)

    assert failure is not None and failure.type == "OutOfStock"
    assert status.state == SagaState.FAILED
    assert status.compensations_run == []
    assert await services.stock() == stock_before
    effects = await services.effects(order.order_id)
    assert (effects.reservations, effects.charges, effects.shipments) == ([], [], [])
    assert effects.record is None


async def test_unknown_sku_is_a_refusal_not_a_crash(
    client: Client, saga_task_queue: str, services: Services
) -> None:
    order = make_order(items=[{"sku": "SKU-NO-SUCH-THING", "quantity": 1, "unit_price": 100}])

    failure, status = await place(client, saga_task_queue, order)

    assert failure is not None and failure.type == "UnknownSku"
    assert status.state == SagaState.FAILED


async def test_declined_payment_releases_the_reservation(
    client: Client, saga_task_queue: str, services: Services
) -> None:
    order = make_order(payment={"token": DECLINED_TOKEN, "last4": "0002"})
    stock_before = await services.stock()

    failure, status = await place(client, saga_task_queue, order)

    assert failure is not None and failure.type == "PaymentDeclined"
    assert status.state == SagaState.ABORTED
    assert status.compensations_run == undone_after("charge_payment")
    assert await services.stock() == stock_before
    effects = await services.effects(order.order_id)
    assert [r["status"] for r in effects.reservations] == ["released"]
    assert effects.charges == []
    assert_fully_undone(effects)


async def test_refused_shipping_refunds_then_releases(
    client: Client, saga_task_queue: str, services: Services
) -> None:
    address = make_order().shipping_address.model_dump() | {"postal_code": UNSERVED_POSTAL_CODE}
    order = make_order(shipping_address=address)
    stock_before = await services.stock()

    failure, status = await place(client, saga_task_queue, order)

    assert failure is not None and failure.type == "ShippingUnavailable"
    assert status.state == SagaState.ABORTED
    assert status.compensations_run == undone_after("schedule_shipment")
    assert await services.stock() == stock_before
    effects = await services.effects(order.order_id)
    assert [c["status"] for c in effects.charges] == ["refunded"]
    assert [r["amount"] for r in effects.refunds] == [order.total]
    assert effects.shipments == []
    assert_fully_undone(effects)


async def test_rejected_confirmation_undoes_shipment_charge_and_reservation(
    client: Client, saga_task_queue: str, services: Services
) -> None:
    order = make_order(customer_id=BLOCKED_CUSTOMER)
    stock_before = await services.stock()

    failure, status = await place(client, saga_task_queue, order)

    assert failure is not None and failure.type == "ConfirmationRejected"
    assert "confirm_order" in failure.message
    assert status.state == SagaState.ABORTED
    assert status.compensations_run == undone_after("confirm_order")
    assert await services.stock() == stock_before
    effects = await services.effects(order.order_id)
    assert [s["status"] for s in effects.shipments] == ["cancelled"]
    assert effects.record is None
    assert_fully_undone(effects)


@pytest.mark.parametrize("after_commit", [False, True], ids=["before-effect", "answer-lost"])
async def test_transient_faults_are_retried_and_charge_once(
    client: Client,
    saga_task_queue: str,
    services: Services,
    after_commit: bool,
    local_activities: bool,
) -> None:
    await services.set_faults("payment", fail_next=2, fail_after_commit=after_commit)
    order = make_order(policy=on_path(FAST_POLICY, local_activities))

    failure, status = await place(client, saga_task_queue, order)

    assert failure is None
    assert status.state == "OrderConfirmed"
    effects = await services.effects(order.order_id)
    assert [(c["amount"], c["status"]) for c in effects.charges] == [(order.total, "charged")]


async def test_placing_an_order_twice_runs_one_saga(
    client: Client, saga_task_queue: str, services: Services, local_activities: bool
) -> None:
    order = make_order(policy=on_path(SagaPolicy(), local_activities))
    handle = await start_saga(client, order, saga_task_queue)
    with pytest.raises(WorkflowAlreadyStartedError):
        await start_saga(client, order, saga_task_queue)
    await handle.result()
    # Not even once the first saga has ended.
    with pytest.raises(WorkflowAlreadyStartedError):
        await start_saga(client, order, saga_task_queue)

    effects = await services.effects(order.order_id)
    assert len(effects.charges) == 1
    assert len(effects.reservations) == 1


async def test_status_shows_the_state_while_in_flight(
    client: Client, saga_task_queue: str, services: Services
) -> None:
    await services.set_faults("shipping", latency_ms=1500)
    order = make_order()
    handle = await start_saga(client, order, saga_task_queue)

    seen: list[Any] = []
    while not seen or seen[-1] != "OrderConfirmed":
        state = (await handle.query(OrderSaga.status)).state
        if not seen or seen[-1] is not state:
            seen.append(state)
        await asyncio.sleep(0.05)

    assert "PaymentCharged" in seen
    assert seen[-1] == "OrderConfirmed"
    assert (await handle.result()).state == "OrderConfirmed"
