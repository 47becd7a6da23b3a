"""Record one workflow history per saga path into tests/histories, for the replay tests.

The set is the current build's (`BUILD_ID` beside the histories names it): after a change to
the saga's code, which is a new build, run `python -m tests.support.record_histories` to record it
again. Sagas of older builds finish on the workers of those builds (Worker Versioning, PINNED),
so their histories need not replay against this code and are not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import httpx
from temporalio.client import WorkflowFailureError, WorkflowHandle

from domain.order import OrderRequest
from domain.saga import OperatorAction, OrderResult, Resolution, SagaState, SagaStatus, Withdrawal
from infra.deployment import build_id
from infra.sockets import free_port
from ops.stack import Stack, embedded_stack
from ordersaga.order_desk import start_saga
from tests.support.orders import (
    BLOCKED_CUSTOMER,
    DECLINED_TOKEN,
    FAST_POLICY,
    SLOW_RETRY,
    SOLD_OUT_SKU,
    UNSERVED_POSTAL_CODE,
    make_order,
    on_path,
)
from tests.support.paths import ROOT
from tests.support.service_state import Services
from workflows import OrderSaga
from workflows.order_steps import SERVICES

HISTORIES = ROOT / "tests" / "histories"

#: The file naming the build that recorded the histories.
RECORDED_BUILD = HISTORIES / "BUILD_ID"

Saga = WorkflowHandle[OrderSaga, OrderResult]

#: Drives a saga while it runs, given the services' call counts from before it started (so it
#: can tell when a step's call has arrived: queries wait while a local activity runs).
Drive = Callable[[Saga, Services, Mapping[str, int]], Awaitable[None]]


async def wait_for(saga: Saga, state: str) -> SagaStatus:
    """Poll the saga's status until it reaches `state`; return that status."""
    while (status := await saga.query(OrderSaga.status)).state != state:
        await asyncio.sleep(0.05)
    return status


async def nothing(saga: Saga, services: Services, calls: Mapping[str, int]) -> None:
    """Let the saga run its course."""


async def cancel_mid_shipment(saga: Saga, services: Services, calls: Mapping[str, int]) -> None:
    """Cancel the workflow while Shipping is slow to answer."""
    await services.wait_for_call("shipping", after=calls["shipping"])
    await saga.cancel()


async def withdraw_mid_shipment(saga: Saga, services: Services, calls: Mapping[str, int]) -> None:
    """The customer withdraws the order while the shipment's step backs off after a fault."""
    await services.wait_for_call("shipping", after=calls["shipping"])
    await saga.execute_update(OrderSaga.withdraw, Withdrawal(reason="ordered twice by mistake"))


async def operator_retries(saga: Saga, services: Services, calls: Mapping[str, int]) -> None:
    """Inventory breaks after reserving; once the release needs attention, mend it and retry."""
    await services.wait_for_call("payment", after=calls["payment"])
    await services.set_faults("inventory", fail_next=1000)
    await wait_for(saga, SagaState.NEEDS_ATTENTION)
    await services.reset_faults()
    await saga.execute_update(
        OrderSaga.resolve_compensation, Resolution(action=OperatorAction.RETRY)
    )


async def operator_marks_done(saga: Saga, services: Services, calls: Mapping[str, int]) -> None:
    """Payment breaks after charging; once the refund needs attention, it is marked done."""
    await services.wait_for_call("shipping", after=calls["shipping"])
    await services.set_faults("payment", fail_next=1000)
    await wait_for(saga, SagaState.NEEDS_ATTENTION)
    await services.reset_faults()
    await saga.execute_update(
        OrderSaga.resolve_compensation,
        Resolution(action=OperatorAction.MARK_DONE, reason="refunded by bank transfer, #981"),
    )


def unserved() -> OrderRequest:
    """An order to a postal code Shipping does not serve."""
    address = make_order().shipping_address.model_dump() | {"postal_code": UNSERVED_POSTAL_CODE}
    return make_order(shipping_address=address, policy=FAST_POLICY)


#: name -> (faults to set before the order is placed, the order, what to do while it runs)
SCENARIOS: dict[str, tuple[dict[str, dict[str, object]], Callable[[], OrderRequest], Drive]] = {
    "confirmed": ({}, make_order, nothing),
    "out_of_stock": (
        {},
        lambda: make_order(items=[{"sku": SOLD_OUT_SKU, "quantity": 1, "unit_price": 100}]),
        nothing,
    ),
    "payment_declined": (
        {},
        lambda: make_order(payment={"token": DECLINED_TOKEN, "last4": "0002"}),
        nothing,
    ),
    "shipping_refused": ({}, unserved, nothing),
    "confirmation_refused": ({}, lambda: make_order(customer_id=BLOCKED_CUSTOMER), nothing),
    "transient_faults_retried": (
        {"payment": {"fail_next": 2, "fail_after_commit": True}},
        lambda: make_order(policy=FAST_POLICY),
        nothing,
    ),
    "deadline_exceeded": (
        {"shipping": {"latency_ms": 3000}},
        lambda: make_order(policy=FAST_POLICY.model_copy(update={"deadline_s": 1.0})),
        nothing,
    ),
    "cancelled": ({"shipping": {"latency_ms": 2000}}, make_order, cancel_mid_shipment),
    "withdrawn": (
        {"shipping": {"fail_next": 1}},
        lambda: make_order(policy=SLOW_RETRY),
        withdraw_mid_shipment,
    ),
    "needs_attention_retried": (
        {"payment": {"latency_ms": 1000}},
        lambda: make_order(payment={"token": DECLINED_TOKEN, "last4": "0002"}, policy=FAST_POLICY),
        operator_retries,
    ),
    "needs_attention_marked_done": (
        {"shipping": {"latency_ms": 1000}},
        unserved,
        operator_marks_done,
    ),
}


#: The prefix of a path's name on the fast path.
FAST = "fast_"


#: Every path, on both ways of calling the services.
SAGA_PATHS = [*SCENARIOS, *(FAST + name for name in SCENARIOS)]


async def record(stack: Stack, services: Services, name: str) -> Path:
    """Run one scenario to its end and write its history."""
    local_activities = name.startswith(FAST)
    faults, make, drive = SCENARIOS[name.removeprefix(FAST)]
    await services.reset_faults()
    for service, settings in faults.items():
        await services.set_faults(service, **settings)
    order = make()
    order = order.model_copy(update={"policy": on_path(order.policy, local_activities)})
    calls = {service: await services.calls(service) for service in SERVICES}
    saga = await start_saga(stack.client, order, stack.task_queue)
    await drive(saga, services, calls)
    with contextlib.suppress(WorkflowFailureError):
        await saga.result()
    await services.reset_faults()
    path = HISTORIES / f"{name}.json"
    path.write_text((await saga.fetch_history()).to_json())
    return path


async def main(names: list[str]) -> None:
    """Record the named scenarios (all of them, replacing the set, by default)."""
    if not names:
        for old in HISTORIES.glob("*.json"):
            old.unlink()
    RECORDED_BUILD.write_text(build_id() + "\n")
    with tempfile.TemporaryDirectory() as data:
        async with (
            embedded_stack(
                Path(data),
                temporal_port=free_port(),
                ui_port=None,
                services_port=free_port(),
                task_queue="record-histories",
            ) as stack,
            httpx.AsyncClient(base_url=stack.services_url) as http,
        ):
            services = Services(http)
            for name in names or SAGA_PATHS:
                print(f"recorded {await record(stack, services, name)}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
