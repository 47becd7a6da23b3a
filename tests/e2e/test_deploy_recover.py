"""`order-saga deploy recover`: the running sagas of a broken build moved onto a good one.

On the session's dev server and services, with `python worker.py` processes of this checkout
(the good build) and of a broken copy: a saga stuck on the broken build is moved where its
history replays, reset where it does not, and ends as it would have on the good build.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkerDeploymentVersion

from domain.policy import ActivityPolicy
from domain.saga import OrderResult
from infra.deployment import build_id, make_current
from infra.devserver import DevServer
from ops.bad_builds import BadBuild, bad_build, build_id_of
from ops.stack import worker_process
from ordersaga.order_desk import start_saga
from tests.e2e.test_deploy import deploy_command, run
from tests.e2e.test_deploy_drill import activities_of
from tests.support.fraud_build import fraud_build
from tests.support.orders import COMPENSATIONS, FAST_POLICY, make_order
from workflows import OrderSaga
from workflows.order_steps import CONFIRMED

Saga = WorkflowHandle[OrderSaga, OrderResult]

#: Steps retried for as long as the test takes: what happens to a saga must not depend on how
#: fast the machine recovers it.
PATIENT = FAST_POLICY.model_copy(
    update={"steps": ActivityPolicy(first_retry_s=0.2, max_retry_interval_s=0.5, max_attempts=1000)}
)


@asynccontextmanager
async def good_and_copy(
    dev_server: DevServer,
    deployment: str,
    services_url: str,
    copy: Path,
    data_dir: Path,
) -> AsyncIterator[tuple[WorkerDeploymentVersion, WorkerDeploymentVersion]]:
    """A worker of this checkout (current) and one of `copy`, made current after it."""
    env = {"DEPLOYMENT_NAME": deployment}
    async with AsyncExitStack() as stack:
        log = stack.enter_context((data_dir / "workers.log").open("ab"))
        await stack.enter_async_context(
            worker_process(
                dev_server.address, deployment, services_url, log,
                data_dir=data_dir / "good", env={**env, "BUILD_LABEL": "good"},
            )
        )  # fmt: skip
        await stack.enter_async_context(
            worker_process(
                dev_server.address, deployment, services_url, log,
                data_dir=data_dir / "copy", env={**env, "BUILD_LABEL": "copy"},
                command=(sys.executable, str(copy / "worker.py")),
            )
        )  # fmt: skip
        good = WorkerDeploymentVersion(deployment, build_id("good"))
        broken = WorkerDeploymentVersion(deployment, f"copy-{build_id_of(copy)}")
        yield good, broken


async def until_stuck(saga: Saga) -> None:
    """Return once the saga's workflow task has failed at least twice in a row."""
    async with asyncio.timeout(60):
        while (await saga.describe()).raw_description.pending_workflow_task.attempt < 2:
            await asyncio.sleep(0.1)


async def until_retried(saga: Saga, activity: str) -> None:
    """Return once the saga's `activity` has been tried at least twice."""
    async with asyncio.timeout(60):
        while True:
            pending = (await saga.describe()).raw_description.pending_activities
            if any(a.activity_type.name == activity and a.attempt >= 2 for a in pending):
                return
            await asyncio.sleep(0.1)


async def saga_result(saga: Saga) -> OrderResult:
    async with asyncio.timeout(60):
        return await saga.result()


async def test_a_saga_stuck_on_a_build_that_raises_moves_and_confirms_on_the_good_one(
    client: Client, dev_server: DevServer, services_url: str, tmp_path: Path
) -> None:
    deployment = "recover-raises"
    copy = bad_build(BadBuild.RAISES, tmp_path / "bad")
    async with good_and_copy(dev_server, deployment, services_url, copy, tmp_path) as (good, bad):
        await make_current(client, bad)
        saga: Saga = await start_saga(client, make_order(), deployment)
        await until_stuck(saga)
        await make_current(client, good)
        argv = ("recover", "--from", bad.build_id, "--to", good.build_id)
        recovered = await run(deploy_command(dev_server, deployment, *argv))
        result = await saga_result(saga)
        again = await run(deploy_command(dev_server, deployment, *argv))
        scheduled = await activities_of(saga)
        pinned = (await saga.describe()).raw_description.workflow_execution_info.versioning_info

    assert recovered[0] == 0, recovered[2]
    assert recovered[1].splitlines() == [f"{saga.id}: moved, pinned to {good.build_id}"]
    assert result.state == CONFIRMED
    assert not set(scheduled) & set(COMPENSATIONS)  # the bug undid nothing
    assert pinned.versioning_override.pinned.version.build_id == good.build_id
    assert again[0] == 2 and again[2].count("\n") == 1
    assert f"no saga runs on {bad.build_id}: there is nothing to recover" in again[2]


async def test_a_saga_whose_history_does_not_replay_is_kept_then_reset_and_confirms(
    client: Client, dev_server: DevServer, services_url: str, tmp_path: Path
) -> None:
    # The recipe's fraud-check build, run against services with no fraud check: its sagas retry
    # check_fraud, a step this checkout does not have, so their histories cannot replay here.
    deployment = "recover-reset"
    copy = fraud_build(tmp_path / "fraud")
    async with good_and_copy(dev_server, deployment, services_url, copy, tmp_path) as (good, new):
        await make_current(client, new)
        saga: Saga = await start_saga(client, make_order(policy=PATIENT), deployment)
        await until_retried(saga, "check_fraud")
        await make_current(client, good)
        argv = ("recover", "--from", new.build_id, "--to", good.build_id)
        kept = await run(deploy_command(dev_server, deployment, *argv))
        reset = await run(deploy_command(dev_server, deployment, *argv, "--reset"))
        latest: Saga = client.get_workflow_handle_for(OrderSaga.run, saga.id)
        result = await saga_result(latest)
        scheduled = await activities_of(latest)
        info = (await latest.describe()).raw_description.workflow_execution_info

    assert kept[0] == 0, kept[2]
    assert f"{saga.id}: kept, its history does not replay on {good.build_id} after event" in kept[1]
    assert reset[0] == 0, reset[2]
    assert f"{saga.id}: reset to event" in reset[1] and f"on {good.build_id}" in reset[1]
    assert result.state == CONFIRMED
    assert info.execution.run_id != saga.run_id
    assert info.versioning_info.versioning_override.pinned.version.build_id == good.build_id
    assert "check_fraud" not in scheduled and "schedule_shipment" in scheduled
