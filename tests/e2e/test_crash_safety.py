"""Crash safety: a worker killed mid-saga or a restarted Temporal server loses and repeats nothing.

Real parts only: the `temporal` dev server, the stand-in services in their own process, and
workers that are processes of their own (`worker.py`), killed with SIGKILL. A step is made to be in
flight at the moment of the kill by slowing its service down (a latency fault) and waiting until
the service has the call. After the kill, an activity's attempt is retried once its
start-to-close timeout has passed, so orders here use a 2 s timeout; a local activity is run
again by the worker that takes the workflow task over. Each test runs on both paths.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import IO, Any

import pytest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import ApplicationError

from domain.order import OrderRequest
from domain.policy import SagaPolicy
from domain.saga import OrderResult, SagaState
from infra.devserver import DevServer
from infra.sockets import free_port
from infra.temporal import connect
from ops.stack import worker_identity, worker_process
from ordersaga.order_desk import start_saga
from tests.support.orders import (
    BLOCKED_CUSTOMER,
    COMPENSATIONS,
    FAST_POLICY,
    STEPS,
    make_order,
    on_path,
    undone_after,
)
from tests.support.saga_checks import (
    activity_runs,
    assert_confirmed_once,
    assert_fully_undone,
    new_skus,
    quantities,
)
from tests.support.service_state import Services
from workflows import OrderSaga
from workflows.order_steps import ORDER_STEPS

#: FAST_POLICY with a 2 s start-to-close timeout: a killed worker's attempt is retried 2 s on.
CRASH_POLICY = SagaPolicy(
    steps=FAST_POLICY.steps.model_copy(update={"timeout_s": 2.0}),
    compensations=FAST_POLICY.compensations.model_copy(update={"timeout_s": 2.0}),
)

#: Added to every call of the service whose step is to be in flight: long enough to kill the
#: worker in the middle of it, shorter than the 2 s timeout so an undisturbed call succeeds.
LATENCY_MS = 1000

#: Bound on a saga's end once its worker has been replaced.
SAGA_WITHIN_S = 60

#: The service each activity calls.
SERVICE_OF = {name: row.port.name for row in ORDER_STEPS for name in (row.name, row.undo)}


@pytest.fixture
def task_queue() -> str:
    """A task queue of the test's own: only the workers it starts poll it."""
    return f"crash-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def worker_log(tmp_path: Path) -> Iterator[IO[bytes]]:
    with (tmp_path / "worker.log").open("ab") as log:
        yield log


def worker_on(
    address: str, task_queue: str, services_url: str, log: IO[bytes]
) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
    """A `worker.py` process polling `task_queue`, its files beside its log."""
    return worker_process(address, task_queue, services_url, log, data_dir=Path(log.name).parent)


async def crash_order(
    services: Services, local_activities: bool = False, **changes: Any
) -> OrderRequest:
    """An order of SKUs only this test uses, with the 2 s timeout."""
    skus = await new_skus(services, 2, stock=100)
    items = [
        {"sku": skus[0], "quantity": 2, "unit_price": 1500},
        {"sku": skus[1], "quantity": 3, "unit_price": 899},
    ]
    policy = on_path(CRASH_POLICY, local_activities)
    return make_order(items=items, policy=policy, **changes)


async def stock_of(services: Services, order: OrderRequest) -> Counter[str]:
    stock = await services.stock()
    return Counter({item.sku: stock[item.sku] for item in order.items})


async def start_and_kill_worker_during(
    activity_type: str,
    client: Client,
    order: OrderRequest,
    dev_server: DevServer,
    services_url: str,
    services: Services,
    task_queue: str,
    worker_log: IO[bytes],
) -> WorkflowHandle[OrderSaga, OrderResult]:
    """Start the saga on a worker process, SIGKILL it while its service holds `activity_type`'s
    call (slowed down by the caller), mend the faults."""
    service = SERVICE_OF[activity_type]
    async with worker_on(dev_server.address, task_queue, services_url, worker_log) as first:
        calls_before = await services.calls(service)
        handle = await start_saga(client, order, task_queue)
        if activity_type in COMPENSATIONS:
            # The step of the same service comes first; its undo is the next call there.
            calls_before += 1
        await services.wait_for_call(service, after=calls_before)
        first.kill()
        await first.wait()
    await services.reset_faults()
    return handle


@pytest.mark.parametrize("step", ["charge_payment", "schedule_shipment"], ids=str)
async def test_worker_killed_during_a_step_confirms_with_one_effect_per_step(
    dev_server: DevServer,
    client: Client,
    services_url: str,
    services: Services,
    task_queue: str,
    worker_log: IO[bytes],
    step: str,
    local_activities: bool,
) -> None:
    order = await crash_order(services, local_activities)
    stock_before = await stock_of(services, order)
    await services.set_faults(SERVICE_OF[step], latency_ms=LATENCY_MS)
    calls_before = await services.calls(SERVICE_OF[step])

    # The killed attempt's request may still be at the service and take effect; the retry must
    # find its stored answer rather than act again.
    handle = await start_and_kill_worker_during(
        step, client, order, dev_server, services_url, services, task_queue, worker_log
    )

    async with worker_on(dev_server.address, task_queue, services_url, worker_log) as second:
        async with asyncio.timeout(SAGA_WITHIN_S):
            result = await handle.result()
        status = await handle.query(OrderSaga.status)  # a query needs a worker
        replacement = worker_identity(second.pid)

    assert result.state == "OrderConfirmed"
    assert status.state == "OrderConfirmed"
    assert status.compensations_run == []
    effects = await services.effects(order.order_id)
    assert_confirmed_once(effects, order)
    assert result.ids["charge_id"] == effects.charges[0]["charge_id"]
    assert stock_before - await stock_of(services, order) == quantities(order)
    # The step was called again (and answered from the service's idempotency record), and the
    # history shows the new worker finished it.
    assert await services.calls(SERVICE_OF[step]) - calls_before >= 2
    runs = await activity_runs(handle)
    # The four steps and nothing else: each step's activity published the step's event.
    assert [run.activity_type for run in runs] == STEPS
    assert runs[STEPS.index(step)].completed_by == replacement


@pytest.mark.parametrize("compensation", ["cancel_shipment", "refund_payment"], ids=str)
async def test_worker_killed_during_a_compensation_aborts_with_everything_undone_once(
    dev_server: DevServer,
    client: Client,
    services_url: str,
    services: Services,
    task_queue: str,
    worker_log: IO[bytes],
    compensation: str,
    local_activities: bool,
) -> None:
    # The Order service refuses this customer, so the saga unwinds shipping, payment, inventory.
    order = await crash_order(services, local_activities, customer_id=BLOCKED_CUSTOMER)
    stock_before = await stock_of(services, order)
    await services.set_faults(SERVICE_OF[compensation], latency_ms=LATENCY_MS)
    calls_before = await services.calls(SERVICE_OF[compensation])

    handle = await start_and_kill_worker_during(
        compensation, client, order, dev_server, services_url, services, task_queue, worker_log
    )

    async with worker_on(dev_server.address, task_queue, services_url, worker_log) as second:
        with pytest.raises(WorkflowFailureError) as failed:
            async with asyncio.timeout(SAGA_WITHIN_S):
                await handle.result()
        status = await handle.query(OrderSaga.status)  # a query needs a worker
        replacement = worker_identity(second.pid)

    failure = failed.value.cause
    assert isinstance(failure, ApplicationError)
    assert failure.type == "ConfirmationRejected"
    assert status.state == SagaState.ABORTED
    undone_in_reverse = undone_after("confirm_order")
    assert status.compensations_run == undone_in_reverse
    effects = await services.effects(order.order_id)
    assert_fully_undone(effects)
    assert [r["status"] for r in effects.reservations] == ["released"]
    assert [(c["amount"], c["status"]) for c in effects.charges] == [(order.total, "refunded")]
    assert [r["amount"] for r in effects.refunds] == [order.total]
    assert [s["status"] for s in effects.shipments] == ["cancelled"]
    assert effects.record is None
    assert await stock_of(services, order) == stock_before
    # Each compensation ran to success, in reverse order of the steps; the one in flight at the
    # crash was called again (its undo took effect once) and finished by the new worker.
    assert await services.calls(SERVICE_OF[compensation]) - calls_before >= 3
    runs = await activity_runs(handle)
    assert [run.activity_type for run in runs] == [
        *STEPS,
        *undone_in_reverse,
        "publish_events",
    ]
    assert all(run.completed for run in runs if run.activity_type in undone_in_reverse)
    crashed = next(run for run in runs if run.activity_type == compensation)
    assert crashed.completed_by == replacement


async def test_server_restart_mid_saga_loses_nothing(
    tmp_path: Path,
    services_url: str,
    services: Services,
    task_queue: str,
    worker_log: IO[bytes],
) -> None:
    with (tmp_path / "temporal.log").open("ab") as server_log:
        server = DevServer(port=free_port(), db_file=tmp_path / "temporal.db", log=server_log)
        await server.start()
        try:
            await _restart_mid_saga(server, services_url, services, task_queue, worker_log)
        finally:
            await server.stop()


async def _restart_mid_saga(
    server: DevServer,
    services_url: str,
    services: Services,
    task_queue: str,
    worker_log: IO[bytes],
) -> None:
    client = await connect(server.address, "default")
    done_before = await crash_order(services)
    in_flight = await crash_order(services)
    stock_before = await stock_of(services, in_flight)

    async with worker_on(server.address, task_queue, services_url, worker_log) as worker:
        finished = await start_saga(client, done_before, task_queue)
        result_before = await finished.result()

        await services.set_faults("shipping", latency_ms=LATENCY_MS)
        calls_before = await services.calls("shipping")
        handle = await start_saga(client, in_flight, task_queue)
        await services.wait_for_call("shipping", after=calls_before)
        await server.stop()
        await services.reset_faults()
        await server.start()

        # The same worker process carries on: it reconnects by itself.
        async with asyncio.timeout(SAGA_WITHIN_S):
            result = await handle.result()
        assert worker.returncode is None
        identity = worker_identity(worker.pid)

    assert result.state == "OrderConfirmed"
    assert_confirmed_once(await services.effects(in_flight.order_id), in_flight)
    assert stock_before - await stock_of(services, in_flight) == quantities(in_flight)
    runs = await activity_runs(handle)
    assert [run.activity_type for run in runs] == STEPS
    assert all(run.completed_by == identity for run in runs)

    # The saga that had ended before the restart is still there, with the same result.
    described = await finished.describe()
    assert described.status is WorkflowExecutionStatus.COMPLETED
    assert await finished.result() == result_before
    assert_confirmed_once(await services.effects(done_before.order_id), done_before)
