"""The saga's search attributes: a visibility query by each finds exactly the expected orders."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from domain.saga import SagaState
from ordersaga.order_desk import start_saga
from tests.support.orders import (
    DECLINED_TOKEN,
    FAST_POLICY,
    UNSERVED_POSTAL_CODE,
    make_order,
    on_path,
)
from tests.support.starter_runner import StarterRunner
from workflows.search_attributes import ORDER_STATUS, saga_query


async def ids_matching(client: Client, query: str, expected: set[str]) -> set[str]:
    """The workflow ids the query finds, once visibility has caught up (it lags a little)."""
    async with asyncio.timeout(20):
        while True:
            found = {execution.id async for execution in client.list_workflows(query)}
            if found == expected:
                return found
            await asyncio.sleep(0.2)


async def test_each_search_attribute_finds_exactly_its_orders(
    client: Client, saga_task_queue: str, starter: StarterRunner
) -> None:
    customer = f"cust-{uuid.uuid4().hex[:10]}"
    address = make_order().shipping_address.model_dump() | {"postal_code": UNSERVED_POSTAL_CODE}
    confirmed = [make_order(customer_id=customer, policy=FAST_POLICY) for _ in range(2)]
    declined = make_order(customer_id=customer, payment={"token": DECLINED_TOKEN, "last4": "0002"})
    unserved = make_order(customer_id=customer, shipping_address=address)
    big = make_order(
        customer_id=customer, items=[{"sku": "SKU-HOODIE", "quantity": 3, "unit_price": 77_777}]
    )
    orders = [*confirmed, declined, unserved, big]
    for order in orders:
        saga = await start_saga(client, order, saga_task_queue)
        with contextlib.suppress(WorkflowFailureError):
            await saga.result()
    by_customer = f"CustomerId = '{customer}'"

    def ids(*chosen: object) -> set[str]:
        return {f"order-{order.order_id}" for order in orders if order in chosen}

    assert await ids_matching(client, by_customer, ids(*orders)) == ids(*orders)
    assert await ids_matching(
        client, saga_query("OrderConfirmed", customer), ids(*confirmed, big)
    ) == ids(*confirmed, big)
    assert await ids_matching(
        client, saga_query(SagaState.ABORTED.value, customer), ids(declined, unserved)
    ) == ids(declined, unserved)
    assert await ids_matching(
        client, f"{by_customer} AND FailedStep = 'charge_payment'", ids(declined)
    ) == ids(declined)
    assert await ids_matching(
        client, f"{by_customer} AND OrderTotal = {big.total}", ids(big)
    ) == ids(big)

    listed = await starter("list", "--status", "Aborted", "--customer", customer)
    assert listed.code == 0, listed.err
    assert f"2 order(s) match {saga_query('Aborted', customer)}" in listed.out
    header, *rows = listed.out.splitlines()[:-1]
    assert header.split() == [
        "ORDER",
        "STATUS",
        "TOTAL",
        "(MINOR",
        "UNITS)",
        "CUSTOMER",
        "FAILED",
        "STEP",
    ]
    columns = sorted(row.split() for row in rows)
    assert columns == sorted(
        [
            [declined.order_id, "Aborted", str(declined.total), customer, "charge_payment"],
            [unserved.order_id, "Aborted", str(unserved.total), customer, "schedule_shipment"],
        ]
    )
    # Aligned: every row's columns start where the header's do.
    assert {row.index("Aborted") for row in rows} == {header.index("STATUS")}


async def test_search_attributes_hold_no_card_data_or_address(
    client: Client, saga_task_queue: str
) -> None:
    order = make_order(customer_id=f"cust-{uuid.uuid4().hex[:10]}")
    saga = await start_saga(client, order, saga_task_queue)
    await saga.result()

    ours = {"OrderStatus", "CustomerId", "OrderTotal", "FailedStep"}
    attributes = {
        pair.key.name: pair.value
        for pair in (await saga.describe()).typed_search_attributes
        if pair.key.name in ours
    }
    assert attributes == {
        "OrderStatus": "OrderConfirmed",
        "CustomerId": order.customer_id,
        "OrderTotal": order.total,
    }


async def order_status_upserts(saga: WorkflowHandle[Any, Any]) -> list[tuple[int, str]]:
    """Each `OrderStatus` the saga upserted, with the workflow task (its completed event) it
    came in."""
    upserts: list[tuple[int, str]] = []
    task = 0
    async for event in saga.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            task = event.event_id
        elif event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            if ORDER_STATUS.name in fields.indexed_fields:
                state = json.loads(fields.indexed_fields[ORDER_STATUS.name].data)
                upserts.append((task, state))
    return upserts


@pytest.mark.parametrize(
    ("payment", "states"),
    [
        ("tok_visa", ["OrderConfirmed"]),
        (DECLINED_TOKEN, [SagaState.COMPENSATING.value, SagaState.ABORTED.value]),
    ],
    ids=["confirmed", "aborted"],
)
async def test_order_status_is_upserted_only_where_people_filter(
    client: Client, saga_task_queue: str, payment: str, states: list[str], local_activities: bool
) -> None:
    if local_activities:
        # The compensations run within the workflow task that ends the saga.
        states = [state for state in states if state != SagaState.COMPENSATING]
    order = make_order(
        payment={"token": payment, "last4": "0002"}, policy=on_path(FAST_POLICY, local_activities)
    )
    saga = await start_saga(client, order, saga_task_queue)
    with contextlib.suppress(WorkflowFailureError):
        await saga.result()

    upserts = await order_status_upserts(saga)

    assert [state for _, state in upserts] == states
    assert len({task for task, _ in upserts}) == len(upserts)  # at most one per workflow task
