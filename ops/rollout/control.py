"""Starting a rollout, following it, answering it, and saying where it stands in a few lines."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    WorkerDeploymentVersion,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from infra.deployment import current_version, rollout_queue
from infra.exits import StartFailure
from ops.preflight import preflight, workers_by_build
from ops.rollout.plan import ENDED, Phase, Progress, RolloutPlan
from ops.rollout.workflow import DeployRollout

#: How long a command waits for the rollout's worker to answer before saying it does not.
ANSWER_WITHIN = timedelta(seconds=5)

Rollout = WorkflowHandle[DeployRollout, Progress]


def rollout_id(deployment: str) -> str:
    """The workflow id of `deployment`'s rollout: one at a time."""
    return f"rollout-{deployment}"


async def start_rollout(client: Client, plan: RolloutPlan) -> Rollout:
    """Start rolling `plan.candidate` out, on the baseline's workers.

    Raises:
        StartFailure: The candidate fails its preflight, no worker of the baseline runs
            rollouts, or a rollout of the deployment is under way.
    """
    await preflight(
        client, WorkerDeploymentVersion(plan.deployment, plan.candidate), plan.task_queue
    )
    queue = rollout_queue(plan.task_queue, plan.baseline)
    if not await workers_by_build(client, queue):  # the rollout's worker is unversioned
        raise StartFailure(
            f"no worker of build {plan.baseline} runs rollouts ({queue}): restart its workers "
            "with this version of worker.py, then try again"
        )
    try:
        return await client.start_workflow(
            DeployRollout.run,
            plan,
            id=rollout_id(plan.deployment),
            task_queue=queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        raise StartFailure(
            f"a rollout of {plan.deployment} is under way: `order-saga deploy status` shows "
            "it; pause, resume or abort it"
        ) from None


async def baseline_of(client: Client, deployment: str, candidate: str) -> str:
    """The build a rollout of `candidate` starts from: the current one.

    Raises:
        StartFailure: No version is current yet, or `candidate` is.
    """
    current = await current_version(client, deployment)
    if current is None:
        raise StartFailure(
            f"no version of {deployment} is current: make the first one current with "
            "`order-saga deploy set-current`; rollouts start from there"
        )
    if current == candidate:
        raise StartFailure(f"{candidate} is current already: there is nothing to roll out")
    return current


async def follow(rollout: Rollout, say: Callable[[str], None], every_s: float = 1.0) -> Progress:
    """Say where the rollout stands at each step, and each finding, as they come.

    Returns:
        How it ended.
    """
    said: set[str] = set()
    stage = None
    while True:
        progress = await rollout.query(DeployRollout.progress)
        head, *details = progress_lines(progress)
        if progress.step and (progress.phase, progress.step) != stage:
            stage = progress.phase, progress.step
            say(head)
        for line in details:
            if line not in said:
                said.add(line)
                say(line)
        if progress.phase in ENDED:
            return progress
        await asyncio.sleep(every_s)


async def answer(client: Client, deployment: str, action: str) -> Progress:
    """Pause, resume or abort `deployment`'s rollout.

    Raises:
        StartFailure: There is none under way, or its worker does not answer.
    """
    rollout: Rollout = client.get_workflow_handle_for(DeployRollout.run, rollout_id(deployment))
    update = {
        "pause": DeployRollout.pause,
        "resume": DeployRollout.resume,
        "abort": DeployRollout.abort,
    }[action]
    try:
        return await rollout.execute_update(update, rpc_timeout=ANSWER_WITHIN)
    except WorkflowUpdateFailedError as err:
        raise StartFailure(f"cannot {action} the rollout of {deployment}: {err.cause}") from None
    except RPCError as err:
        raise StartFailure(_unanswered(deployment, err)) from None


async def rollout_lines(client: Client, deployment: str) -> list[str]:
    """Where `deployment`'s latest rollout stands, for `deploy status`; none if there was none."""
    rollout: Rollout = client.get_workflow_handle_for(DeployRollout.run, rollout_id(deployment))
    try:
        described = await rollout.describe()
        if described.status != WorkflowExecutionStatus.RUNNING:
            return progress_lines(await rollout.result(rpc_timeout=ANSWER_WITHIN))
        return progress_lines(
            await rollout.query(DeployRollout.progress, rpc_timeout=ANSWER_WITHIN)
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return []
        return [_unanswered(deployment, err)]
    except WorkflowQueryFailedError as err:
        return [f"rollout: it does not answer ({err})"]


def _unanswered(deployment: str, err: RPCError) -> str:
    if err.status == RPCStatusCode.NOT_FOUND:
        return f"no rollout of {deployment} is under way ({err.message})"
    return (
        f"the rollout of {deployment} did not answer ({err.message}): the workers of the build "
        "it started from run it; are they up?"
    )


def progress_lines(progress: Progress) -> list[str]:
    """A rollout in a few lines: where it stands, then its findings and recovered sagas."""
    plan = progress.plan
    steps = " → ".join(f"{step:g}%" for step in plan.steps)
    head = f"rollout of {plan.candidate} (from {plan.baseline}, {steps}): {progress.phase}"
    if progress.phase in (Phase.RAMPING, Phase.PAUSED):
        head += (
            f", step {progress.step}/{len(plan.steps)} at {progress.percent:g}%, "
            f"{progress.candidate_sagas} saga(s) on it in this step"
        )
    lines = [head, *(f"  finding: {finding}" for finding in progress.findings)]
    if progress.rolled_back_at and progress.live_since:
        live = (progress.rolled_back_at - progress.live_since).total_seconds()
        lines.append(
            f"  {plan.candidate} was live {live:.1f} s and started {progress.reached} saga(s)"
        )
    lines += [f"  recovered: {line}" for line in progress.recovered]
    return lines
