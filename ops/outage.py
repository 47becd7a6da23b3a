"""An operator's bad day in miniature: many sagas waiting because Inventory is down.

A worker of the real `OrderSaga` whose activities stand in for the services: every order's
items are reserved, its card is declined, and releasing the items fails while Inventory is
`down`, so each saga waits for an operator holding its reservation. What the views and the
bulk answers work on is the server's side of it (visibility, updates), which is real. Used by
`order-saga operator-drill` and its tests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkerDeploymentVersion
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from domain.policy import ActivityPolicy, SagaPolicy
from domain.saga import OrderResult, SagaState
from infra.deployment import build_id, deployment_config, make_current
from infra.settings import DEFAULT_DEPLOYMENT_NAME
from ops.workload import Kind, make_order
from ordersaga.order_desk import start_saga
from ports.contract import CompensationInput, StepResult
from worker import tuned_worker
from workflows import OrderSaga
from workflows.order_saga import publish_events
from workflows.order_steps import COMPENSATIONS, STEPS
from workflows.search_attributes import saga_query

#: One try at each compensation: a failed release waits for an operator at once. On the fast
#: path (local activities), so a thousand sagas get there in seconds.
ONE_TRY = SagaPolicy(
    steps=ActivityPolicy(first_retry_s=0.1, max_retry_interval_s=1.0),
    compensations=ActivityPolicy(max_attempts=1),
    local_activities=True,
)

Saga = WorkflowHandle[OrderSaga, OrderResult]


class InventoryOutage:
    """The saga's activities while Inventory is down: releases fail, and are counted per order.

    Attributes:
        down: Whether releasing fails.
        releases: Release attempts, by order id.
    """

    def __init__(self) -> None:
        self.down = True
        self.releases: Counter[str] = Counter()
        self._released = asyncio.Condition()

    async def released(self, total: int) -> None:
        """Return once `total` release attempts have been made, over all orders."""
        async with self._released:
            await self._released.wait_for(lambda: sum(self.releases.values()) >= total)

    def activities(self) -> list[Callable[..., Any]]:
        """A stand-in for each activity the saga calls."""
        return (
            [self._step(name) for name in STEPS]
            + [self._compensation(name) for name in COMPENSATIONS]
            + [publish_events]
        )

    def _step(self, name: str) -> Callable[..., Any]:
        @activity.defn(name=name)
        async def step(arg: dict[str, Any]) -> StepResult:
            if name == "charge_payment":
                raise ApplicationError(
                    "card declined",
                    type="PaymentDeclined",
                    non_retryable=True,
                    category=ApplicationErrorCategory.BENIGN,
                )
            return StepResult(id=f"{name}-{arg['request']['order_id']}")

        return step

    def _compensation(self, name: str) -> Callable[..., Any]:
        @activity.defn(name=name)
        async def compensation(arg: dict[str, Any]) -> None:
            order_id = CompensationInput.model_validate(arg).order_id
            if name == "release_inventory":
                async with self._released:
                    self.releases[order_id] += 1
                    self._released.notify_all()
                if self.down:
                    raise ApplicationError("inventory answered 503", type="ServiceUnavailable")

        return compensation


@asynccontextmanager
async def outage_worker(
    client: Client, task_queue: str, outage: InventoryOutage
) -> AsyncIterator[None]:
    """A worker of this build of the saga on `task_queue`, made current; `outage` its activities."""
    version = WorkerDeploymentVersion(DEFAULT_DEPLOYMENT_NAME, build_id())
    async with tuned_worker(
        client, task_queue, [OrderSaga], outage.activities(), deployment=deployment_config(version)
    ):
        await make_current(client, version)
        yield


async def strand(client: Client, task_queue: str, count: int) -> list[Saga]:
    """Place `count` orders on `task_queue` and return once every one waits for an operator."""
    starting = asyncio.Semaphore(50)

    async def place() -> Saga:
        async with starting:
            order = make_order(f"stranded-{uuid.uuid4().hex[:12]}", Kind.DECLINED, ONE_TRY)
            return await start_saga(client, order, task_queue)

    sagas = await asyncio.gather(*(place() for _ in range(count)))
    await waiting_count(client, count)
    return sagas


async def waiting_count(client: Client, count: int) -> None:
    """Return once `count` sagas wait for an operator, as the server's visibility lists them."""
    query = f"{saga_query(SagaState.NEEDS_ATTENTION.value)} AND ExecutionStatus = 'Running'"
    async with asyncio.timeout(300):
        while True:
            if (await client.count_workflows(query)).count == count:
                return
            await asyncio.sleep(0.5)  # visibility notifies nothing: look again
