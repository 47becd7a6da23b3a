"""What the worker spares the sandbox for every run (importing the project's workflow modules,
compiling its way in), and what it does not (its restrictions)."""

from __future__ import annotations

import importlib
import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import worker
from infra.sandbox import compiled_snippet
from tests.support.sandbox_probe import EVERY_WORKFLOW_MODULE, ClockReader, ModuleIdentity

#: The step table, which the saga's own code imports past the sandbox (it names the activities,
#: whose modules do I/O): shared in every sandbox.
PASSED_THROUGH_BY_THE_SAGA = {"workflows.order_steps"}


async def module_ids(env: WorkflowEnvironment, *, default_sandbox: bool) -> list[int]:
    """The workflow modules' ids in `tuned_worker`'s sandbox, or in the SDK's default one."""
    task_queue = f"sandbox-{uuid.uuid4()}"
    runs_on = (
        Worker(env.client, task_queue=task_queue, workflows=[ModuleIdentity])
        if default_sandbox
        else worker.tuned_worker(env.client, task_queue, [ModuleIdentity], [])
    )
    async with runs_on:
        return await env.client.execute_workflow(
            ModuleIdentity.run,
            EVERY_WORKFLOW_MODULE,
            id=f"module-identity-{uuid.uuid4()}",
            task_queue=task_queue,
        )


async def test_the_worker_shares_the_workflow_modules_which_the_default_sandbox_still_checks(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    host = [id(importlib.import_module(name)) for name in EVERY_WORKFLOW_MODULE]

    shared = await module_ids(time_skipping_env, default_sandbox=False)
    reimported = await module_ids(time_skipping_env, default_sandbox=True)

    # The worker's sandbox hands out the process's own modules: nothing imported per run.
    assert shared == host
    # The SDK's default sandbox (the unit tests' and the replayer's) imports its own copies,
    # whose every call its restrictions check.
    pairs = zip(EVERY_WORKFLOW_MODULE, reimported, host, strict=True)
    same = {name for name, mine, theirs in pairs if mine == theirs}
    assert same == PASSED_THROUGH_BY_THE_SAGA


async def test_the_worker_compiles_its_ways_into_the_sandbox_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    compiled_snippet.cache_clear()

    await module_ids(time_skipping_env, default_sandbox=False)
    first = compiled_snippet.cache_info()
    await module_ids(time_skipping_env, default_sandbox=False)
    second = compiled_snippet.cache_info()

    # The SDK still enters the sandbox through the method the worker's runner overrides...
    assert first.misses > 0
    assert first.hits > 0
    # ...and a second run, on a second worker, compiles nothing new.
    assert second.misses == first.misses
    assert second.hits > first.hits


async def test_the_worker_s_sandbox_still_refuses_the_machine_s_clock(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    task_queue = f"sandbox-{uuid.uuid4()}"
    async with worker.tuned_worker(time_skipping_env.client, task_queue, [ClockReader], []):
        with pytest.raises(WorkflowFailureError) as failure:
            await time_skipping_env.client.execute_workflow(
                ClockReader.run, id=f"clock-reader-{uuid.uuid4()}", task_queue=task_queue
            )

    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == "RestrictedWorkflowAccessError"
