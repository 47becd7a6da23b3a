"""`order-saga deploy`: versions listed, a worker told how to become current, a waiting saga moved.

Each test's workers are versions of a deployment of its own, on the session's dev server, so
that the other tests' version stays current.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import IO

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkerDeploymentVersion

from domain.saga import OperatorAction, Resolution, SagaState
from infra.deployment import build_id
from infra.devserver import DevServer
from ops.recovery import Outcome, recover
from ops.routing import deployment_status
from ops.stack import worker_process
from tests.support.operator_waits import saga_waiting_for_an_operator
from tests.support.orders import undone_after
from tests.support.service_state import Services
from tests.support.starter_runner import until_logged
from workflows import OrderSaga


def deploy_command(dev_server: DevServer, deployment: str, *argv: str) -> list[str]:
    """`order-saga deploy ARGV` for a deployment whose workers poll a task queue of its name."""
    return [
        sys.executable, "-m", "ops.cli", "deploy", *argv, "--address", dev_server.address,
        "--deployment-name", deployment, "--task-queue", deployment,
    ]  # fmt: skip


async def run(argv: list[str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_waiting_saga_moves_to_a_build_its_history_replays_on(
    client: Client,
    dev_server: DevServer,
    services_url: str,
    services: Services,
    tmp_path: Path,
) -> None:
    # Two versions of the same saga code (a redeploy under another label): the history of a
    # saga waiting on the first replays on the second, so it may move there.
    deployment = f"move-{uuid.uuid4().hex[:8]}"
    old = WorkerDeploymentVersion(deployment, build_id("old"))
    new = WorkerDeploymentVersion(deployment, build_id("new"))

    def worker(label: str, log: IO[bytes]) -> AbstractAsyncContextManager[object]:
        env = {"DEPLOYMENT_NAME": deployment, "BUILD_LABEL": label}
        return worker_process(
            dev_server.address, deployment, services_url, log, data_dir=tmp_path, env=env
        )

    with (tmp_path / "workers.log").open("ab") as log:
        async with contextlib.AsyncExitStack() as old_worker:
            await old_worker.enter_async_context(worker("old", log))
            saga = await saga_waiting_for_an_operator(client, services, deployment)
            async with worker("new", log):
                moves = await recover(client, old, new, deployment)
                await old_worker.aclose()  # from here on only the new build's worker runs
                await saga.execute_update(
                    OrderSaga.resolve_compensation, Resolution(action=OperatorAction.RETRY)
                )
                with pytest.raises(WorkflowFailureError):
                    await saga.result()
                status = await saga.query(OrderSaga.status)

    assert [(move.workflow_id, move.outcome) for move in moves] == [(saga.id, Outcome.MOVED)]
    assert status.state == SagaState.ABORTED
    assert status.compensations_run == undone_after("charge_payment")


async def test_deploy_status_lists_the_versions_and_a_worker_says_how_to_become_current(
    client: Client, dev_server: DevServer, services_url: str, tmp_path: Path
) -> None:
    deployment = f"status-{uuid.uuid4().hex[:8]}"
    log_file = tmp_path / "worker.log"
    env = {"DEPLOYMENT_NAME": deployment}
    with log_file.open("ab") as log:
        async with worker_process(
            dev_server.address,
            deployment,
            services_url,
            log,
            data_dir=tmp_path,
            env=env,
            current=False,
        ):
            before = await run(deploy_command(dev_server, deployment, "status"))
            made = await run(deploy_command(dev_server, deployment, "set-current"))
            after = await deployment_status(client, deployment, deployment)
            hint = await until_logged(log_file, "order-saga deploy set-current")

    assert before[0] == 0, before[2]
    assert f"deployment {deployment}, current: none" in before[1]
    assert build_id() in before[1]
    assert made[0] == 0 and f"{build_id()} is now current" in made[1], made[2]
    assert [(state.build_id, state.routing) for state in after] == [(build_id(), "current")]
    assert f"--build-id {build_id()} --address {dev_server.address}" in hint


async def test_deploy_status_of_an_unknown_deployment_is_one_line(dev_server: DevServer) -> None:
    code, _, err = await run(deploy_command(dev_server, "nobody-deploys-this", "status"))

    assert code == 2
    assert err.strip().count("\n") == 0
    assert "no Worker Deployment 'nobody-deploys-this'" in err
    assert "Traceback" not in err
