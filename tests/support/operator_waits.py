"""A saga left waiting for an operator: its card declined, the release of its items failing."""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle

from domain.saga import OrderResult, SagaState
from ordersaga.order_desk import start_saga
from tests.support.orders import DECLINED_TOKEN, IMPATIENT, make_order
from tests.support.record_histories import wait_for
from tests.support.service_state import Services
from workflows import OrderSaga


async def saga_waiting_for_an_operator(
    client: Client, services: Services, task_queue: str
) -> WorkflowHandle[OrderSaga, OrderResult]:
    """Start a saga on `task_queue` and return once it waits for an operator.

    Payment is slow, so the saga's charge is in flight when Inventory starts failing; the card
    is declined, and the release of the reservation fails until its attempts run out. The
    services are well-behaved again when this returns: an operator's retry then succeeds.
    """
    await services.set_faults("payment", latency_ms=500)
    charges = await services.calls("payment")
    order = make_order(payment={"token": DECLINED_TOKEN, "last4": "0002"}, policy=IMPATIENT)
    saga = await start_saga(client, order, task_queue)
    await services.wait_for_call("payment", after=charges)
    await services.set_faults("inventory", fail_next=1000)
    await wait_for(saga, SagaState.NEEDS_ATTENTION)
    await services.reset_faults()
    return saga
