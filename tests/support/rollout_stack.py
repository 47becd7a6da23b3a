"""A stack for rollouts: a dev server, services, a worker of this checkout and one of a copy, and
orders flowing on them, driven by `order-saga deploy` as an operator would."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client, WorkflowHandle

from domain.policy import ActivityPolicy, SagaPolicy
from domain.saga import OrderResult
from ops.stack import worker_process
from ordersaga.order_desk import start_saga
from tests.support.fraud_build import CopyStack, copy_stack, in_copy
from tests.support.orders import make_order
from workflows import OrderSaga

TASK_QUEUE = "bad-build-drill"

#: Orders placed a second while the rollout runs: enough that a 5 % ramp gets a few.
ORDERS_PER_S = 6

#: The orders' steps retry for about half a minute: longer than a broken build takes to be
#: found, rolled back and its sagas moved (a saga whose retries run out first is undone: under a
#: loaded CI machine, the default 14 s once ran out before the move).
OUTLASTS_A_ROLLBACK = SagaPolicy(
    steps=ActivityPolicy(first_retry_s=1.0, max_retry_interval_s=4.0, max_attempts=10)
)

#: The rollout's steps and hold, short enough for a test, long enough to judge.
ROLLOUT = ("--steps", "5,25,100", "--hold", "15", "--hold-sagas", "2", "--check-every", "1")

Saga = WorkflowHandle[OrderSaga, OrderResult]


@dataclass
class OrderFlow:
    """Orders placed at a steady rate until stopped."""

    client: Client
    sagas: list[Saga] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while not self._stop.is_set():
            order = make_order(policy=OUTLASTS_A_ROLLBACK)
            self.sagas.append(await start_saga(self.client, order, TASK_QUEUE))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1 / ORDERS_PER_S)

    def stop(self) -> None:
        self._stop.set()

    async def finish(self) -> list[OrderResult]:
        """Stop placing orders; how each saga placed ended."""
        self.stop()
        async with asyncio.timeout(120):
            return [await saga.result() for saga in self.sagas]


@asynccontextmanager
async def drill_stack(copy: Path, tmp_path: Path) -> AsyncIterator[tuple[CopyStack, OrderFlow]]:
    """The stack, a worker of this checkout (current, label good) and one of `copy` (label new),
    and orders flowing until the flow is finished."""
    async with AsyncExitStack() as stack:
        rig = await stack.enter_async_context(copy_stack(copy, tmp_path))
        log = stack.enter_context((tmp_path / "workers.log").open("ab"))
        for label, command in (("good", None), ("new", (sys.executable, str(copy / "worker.py")))):
            await stack.enter_async_context(
                worker_process(
                    rig.address, TASK_QUEUE, rig.services_url, log,
                    data_dir=tmp_path / label, env={"BUILD_LABEL": label},
                    command=command, current=label == "good",
                )
            )  # fmt: skip
        flow = OrderFlow(rig.client)
        placing = asyncio.create_task(flow.run())
        try:
            yield rig, flow
        finally:
            flow.stop()
            await placing


async def deploy(rig: CopyStack, *argv: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ops.cli", "deploy", *argv, "--address", rig.address,
        "--task-queue", TASK_QUEUE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def audit(rig: CopyStack, copy: Path) -> str:
    checked = in_copy(
        copy, "-m", "ops.cli", "audit", "--data-dir", str(rig.services_dir),
        "--address", rig.address,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return checked.stdout
