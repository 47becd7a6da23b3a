"""The deploy drill: a new build of the saga made current under load, and the old one drained.

On a dev server, the services and worker processes of their own: sagas run on this checkout's
build (v1), some held mid-step by a slow Shipping service, one waiting for an operator. The
recipe's fraud-check build (v2: its saga issues other commands) starts beside it and is made
current. New sagas run v2; every v1 saga ends on v1, with no non-determinism in any worker's
log; the waiting saga cannot move to v2 (its history does not replay there) and ends on v1 once
the operator answers; v1 drains, its worker stops, it is retired; the audit finds nothing wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkerDeploymentVersion

from domain.saga import OperatorAction, OrderResult, Resolution
from infra.deployment import build_id, make_current
from infra.exits import StartFailure
from infra.settings import DEFAULT_DEPLOYMENT_NAME
from ops.bad_builds import build_id_of
from ops.routing import VersionState, deployment_status, retire
from ops.stack import worker_process
from ordersaga.order_desk import start_saga
from tests.support.fraud_build import copy_stack, fraud_build, in_copy, steps_of
from tests.support.operator_waits import saga_waiting_for_an_operator
from tests.support.orders import make_order
from tests.support.record_histories import wait_for
from workflows import OrderSaga

TASK_QUEUE = "drill"

#: Sagas started on each build while the other is there too.
LOAD = 6

Saga = WorkflowHandle[OrderSaga, OrderResult]


async def activities_of(saga: Saga) -> list[str]:
    history = await saga.fetch_history()
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]


async def pinned_to(saga: Saga) -> str:
    info = (await saga.describe()).raw_description.workflow_execution_info.versioning_info
    return info.deployment_version.build_id


async def test_a_new_build_deployed_under_load_runs_new_sagas_while_the_old_one_drains(
    tmp_path: Path,
) -> None:
    copy = fraud_build(tmp_path / "v2")
    steps_v2 = [name for name, _ in steps_of(copy)]
    v1 = WorkerDeploymentVersion(DEFAULT_DEPLOYMENT_NAME, build_id())
    v2 = WorkerDeploymentVersion(DEFAULT_DEPLOYMENT_NAME, build_id_of(copy))
    v1_log, v2_log = tmp_path / "worker-v1.log", tmp_path / "worker-v2.log"
    async with copy_stack(copy, tmp_path) as stack:
        client, services = stack.client, stack.services
        with v1_log.open("ab") as log:
            v1_worker = worker_process(
                stack.address, TASK_QUEUE, stack.services_url, log, data_dir=tmp_path / "v1"
            )
            async with contextlib.AsyncExitStack() as v1_running:
                await v1_running.enter_async_context(v1_worker)

                # On v1: one saga waiting for an operator (its release keeps failing) ...
                waiting = await saga_waiting_for_an_operator(client, services, TASK_QUEUE)
                # ... and sagas held mid-step by a slow Shipping service.
                await services.set_faults("shipping", latency_ms=3000)
                old = [await start_saga(client, make_order(), TASK_QUEUE) for _ in range(LOAD)]
                for saga in old:
                    await wait_for(saga, "PaymentCharged")

                with v2_log.open("ab") as log2:
                    command = (sys.executable, str(copy / "worker.py"))
                    async with worker_process(
                        stack.address,
                        TASK_QUEUE,
                        stack.services_url,
                        log2,
                        data_dir=tmp_path / "v2",
                        command=command,
                        current=False,
                    ):
                        await make_current(client, v2)
                        new = [
                            await start_saga(client, make_order(), TASK_QUEUE) for _ in range(LOAD)
                        ]
                        old_results = [await saga.result() for saga in old]
                        new_results = [await saga.result() for saga in new]
                        draining = await deployment_status(
                            client, DEFAULT_DEPLOYMENT_NAME, TASK_QUEUE
                        )
                        with pytest.raises(StartFailure, match="has not drained"):
                            await retire(client, v1, TASK_QUEUE)
                        moving = in_copy(
                            copy, "-m", "ops.cli", "deploy", "recover",
                            "--from", v1.build_id, "--address", stack.address,
                            "--task-queue", TASK_QUEUE,
                        )  # fmt: skip
                        await waiting.execute_update(
                            OrderSaga.resolve_compensation,
                            Resolution(action=OperatorAction.RETRY),
                        )
                        with pytest.raises(WorkflowFailureError):
                            await waiting.result()
                        drained = await until_drained(client, v1.build_id)
                        await v1_running.aclose()  # v1's worker stops
                        await retire_when_unpolled(client, v1)
                        retired = await deployment_status(
                            client, DEFAULT_DEPLOYMENT_NAME, TASK_QUEUE
                        )
                        old_activities = [await activities_of(saga) for saga in old]
                        new_activities = [await activities_of(saga) for saga in new]
                        old_versions = {await pinned_to(saga) for saga in [*old, waiting]}
                        new_versions = {await pinned_to(saga) for saga in new}
        audit = in_copy(
            copy, "-m", "ops.cli", "audit", "--data-dir", str(stack.services_dir),
            "--address", stack.address,
        )  # fmt: skip

    assert v1.build_id != v2.build_id
    assert {result.state for result in [*old_results, *new_results]} == {"OrderConfirmed"}
    assert old_versions == {v1.build_id}
    assert new_versions == {v2.build_id}
    assert all("check_fraud" not in names for names in old_activities)
    assert all(names[: len(steps_v2)] == steps_v2 for names in new_activities)
    assert all(result.ids.get("fraud_check_id") for result in new_results)
    states = {state.build_id: state for state in draining}
    assert states[v2.build_id].routing == "current"
    assert (states[v1.build_id].running, states[v1.build_id].waiting) == (1, 1)
    assert not states[v1.build_id].drained
    assert moving.returncode == 0, moving.stderr
    assert f"{waiting.id}: kept, its history does not replay on {v2.build_id}" in moving.stdout
    assert drained.drained
    assert [state.build_id for state in retired] == [v2.build_id]
    for log_file in (v1_log, v2_log):
        text = log_file.read_text()
        assert "TMPRL1100" not in text and "Nondeterminism" not in text, log_file
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "0 violation(s)" in audit.stdout


async def until_drained(client: Client, build: str) -> VersionState:
    """`build`'s state once it has drained (visibility catches up a moment after a saga ends)."""
    async with asyncio.timeout(30):
        while True:
            states = await deployment_status(client, DEFAULT_DEPLOYMENT_NAME, TASK_QUEUE)
            state = next(state for state in states if state.build_id == build)
            if state.drained:
                return state
            await asyncio.sleep(0.2)


async def retire_when_unpolled(client: Client, version: WorkerDeploymentVersion) -> None:
    """Retire `version` once the server no longer counts its stopped worker as polling."""
    async with asyncio.timeout(60):
        while True:
            try:
                await retire(client, version, TASK_QUEUE)
                return
            except StartFailure:
                await asyncio.sleep(0.5)
