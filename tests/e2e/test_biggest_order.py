"""The biggest order the input admits runs end to end on both paths, far inside Temporal's limits.

Every list at its longest, every text at its longest, every amount at its highest: its SKUs are
stocked first, its card tokenized, and it is placed through the real services. Its payload and
its history are measured against the server's default limits.
"""

from __future__ import annotations

import httpx
import pytest
from temporalio.client import Client

from domain.order import OrderRequest
from ordersaga.order_desk import start_saga
from tests.support.orders import (
    EVENTS_LIMIT,
    HISTORY_LIMIT,
    PAYLOAD_LIMIT,
    biggest_order,
    on_path,
)
from workflows.order_steps import CONFIRMED


async def placeable_biggest_order(services_url: str) -> OrderRequest:
    """The biggest order, its SKUs stocked and its card tokenized at the services."""
    async with httpx.AsyncClient(base_url=services_url) as http:
        card = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2030}
        token = (await http.post("/payment/tokens", json=card)).json()
        order = biggest_order(token["token"], token["last4"])
        for item in order.items:
            stocked = await http.put(
                f"/inventory/stock/{item.sku}", json={"available": item.quantity}
            )
            stocked.raise_for_status()
    return order


async def test_the_biggest_order_confirms_and_its_history_stays_far_inside_the_limits(
    client: Client,
    services_url: str,
    saga_task_queue: str,
    local_activities: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    order = await placeable_biggest_order(services_url)
    order = order.model_copy(update={"policy": on_path(order.policy, local_activities)})

    saga = await start_saga(client, order, saga_task_queue)
    result = await saga.result()
    history = await saga.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    payload = started.input.payloads[0].ByteSize()
    info = (await saga.describe()).raw_description.workflow_execution_info
    with capsys.disabled():
        print(
            f"\nbiggest order, {'local' if local_activities else 'regular'} activities: input "
            f"payload {payload} B, history {info.history_size_bytes} B in "
            f"{info.history_length} events"
        )

    assert (result.state, result.total) == (CONFIRMED, order.total)
    assert payload * 100 < PAYLOAD_LIMIT
    assert info.history_size_bytes * 100 < HISTORY_LIMIT
    assert info.history_length * 100 < EVENTS_LIMIT
