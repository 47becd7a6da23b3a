"""What the worker spares the sandbox for every run: compiling the workflows, importing helpers."""

from __future__ import annotations

import importlib
import importlib.util
import os
import uuid

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import worker
from tests.sandbox_probe import ModuleIdentity


def test_stale_or_missing_workflow_bytecode_is_written_at_worker_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As in the Docker image: Python itself writes no bytecode.
    monkeypatch.setattr("sys.dont_write_bytecode", True)
    sources = sorted(worker.WORKFLOWS_DIR.glob("*.py"))
    cached = [importlib.util.cache_from_source(str(source)) for source in sources]
    for pyc in cached:
        if os.path.exists(pyc):
            os.remove(pyc)

    worker.cache_workflow_bytecode()

    for source, pyc in zip(sources, cached, strict=True):
        assert os.path.getmtime(pyc) >= os.path.getmtime(source), pyc


async def module_ids(env: WorkflowEnvironment, *, default_sandbox: bool) -> list[int]:
    """The saga helpers' module ids in `tuned_worker`'s sandbox, or in the SDK's default one."""
    task_queue = f"sandbox-{uuid.uuid4()}"
    runs_on = (
        Worker(env.client, task_queue=task_queue, workflows=[ModuleIdentity])
        if default_sandbox
        else worker.tuned_worker(env.client, task_queue, [ModuleIdentity], [])
    )
    async with runs_on:
        return await env.client.execute_workflow(
            ModuleIdentity.run,
            list(worker.SAGA_HELPERS),
            id=f"module-identity-{uuid.uuid4()}",
            task_queue=task_queue,
        )


async def test_the_worker_shares_the_saga_helpers_which_the_default_sandbox_still_checks(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    host = [id(importlib.import_module(name)) for name in worker.SAGA_HELPERS]

    shared = await module_ids(time_skipping_env, default_sandbox=False)
    reimported = await module_ids(time_skipping_env, default_sandbox=True)

    # The worker's sandbox hands out the process's own modules: nothing imported per run.
    assert shared == host
    # The SDK's default sandbox (the unit tests' and the replayer's) imports its own copies,
    # whose every call its restrictions check.
    assert all(mine != theirs for mine, theirs in zip(reimported, host, strict=True))
