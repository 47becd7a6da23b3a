"""Sagas caught while their shipment is being scheduled, to be withdrawn or cancelled there.

Shipping is slowed for the while (the services' fault injection), and the saga is caught once
its `status` query says the card is charged: no guess of time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from temporalio.client import Client, WorkflowHandle

from domain.order import OrderRequest
from domain.saga import OrderResult
from ordersaga.order_desk import start_saga
from tests.support.service_state import Services
from workflows import OrderSaga

#: How long Shipping takes to answer while a saga is to be caught: long enough to act.
SHIPPING_LATENCY_MS = 3000


@asynccontextmanager
async def slow_shipping(services_url: str) -> AsyncIterator[None]:
    """Shipping answers after `SHIPPING_LATENCY_MS` until the context ends."""
    async with httpx.AsyncClient(base_url=services_url) as http:
        services = Services(http)
        await services.set_faults("shipping", latency_ms=SHIPPING_LATENCY_MS)
        try:
            yield
        finally:
            await services.set_faults("shipping")


async def caught_mid_shipment(
    client: Client, order: OrderRequest, task_queue: str
) -> WorkflowHandle[OrderSaga, OrderResult]:
    """`order`'s saga, started and waited for until its shipment is being scheduled."""
    handle = await start_saga(client, order, task_queue)
    while "charge_payment" not in (await handle.query(OrderSaga.status)).steps_done:
        await asyncio.sleep(0.05)  # polls the saga's own answer
    return handle
