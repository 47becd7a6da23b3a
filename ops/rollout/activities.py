"""What a rollout does outside its workflow: route new sagas, measure both builds, recover.

Each activity runs on a worker of the rollout's baseline build (`rollout_queue`), so recovery
replays the candidate's sagas against the baseline's own code.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowFailureError,
)
from temporalio.common import WorkerDeploymentVersion
from temporalio.exceptions import ApplicationError

from domain.saga import SagaState
from infra.deployment import stop_ramping
from infra.exits import StartFailure
from ops.recovery import recover
from ops.rollout.plan import BuildFigures, Limits, RolloutPlan
from ops.routing import ramp, set_current
from workflows.order_failures import INTERRUPTIONS, ORDER_REFUSED
from workflows.order_steps import REFUSALS
from workflows.search_attributes import FAILED_STEP, ORDER_STATUS

#: Failure types a saga ends with that are nobody's bug: a refusal, or something from outside.
NOT_THE_BUILDS = frozenset({*REFUSALS, ORDER_REFUSED, *INTERRUPTIONS})

#: `ApplicationError.type` of a version that failed its preflight: the rollout cannot go on.
PREFLIGHT_FAILED = "PreflightFailed"

#: At most this many of a build's sagas are looked at one by one in a measure; a build with
#: more (the baseline, beside a small ramp) is judged by a sample of its newest.
SAMPLE = 40


class Measurement(BaseModel):
    """Both builds' figures over the same window."""

    candidate: BuildFigures
    baseline: BuildFigures


class RolloutActivities:
    """The rollout's activities, on one client of the server."""

    def __init__(self, client: Client) -> None:
        """Act on the server `client` is connected to."""
        self._client = client

    @activity.defn
    async def route_share(self, plan: RolloutPlan, percent: float) -> None:
        """Send `percent` of new sagas to the candidate (100: make it current).

        Raises:
            ApplicationError: Non-retryable, `PreflightFailed`: its workers are gone or a service
                of its steps does not answer.
        """
        version = WorkerDeploymentVersion(plan.deployment, plan.candidate)
        try:
            if percent >= 100:
                await set_current(self._client, version, plan.task_queue)
            else:
                await ramp(self._client, version, percent, plan.task_queue)
        except StartFailure as err:
            raise ApplicationError(str(err), type=PREFLIGHT_FAILED, non_retryable=True) from None

    @activity.defn
    async def stop_ramping(self, plan: RolloutPlan) -> None:
        """Send every new saga to the baseline again."""
        await stop_ramping(self._client, plan.deployment)

    @activity.defn
    async def recover_candidate(self, plan: RolloutPlan) -> list[str]:
        """Move the candidate's running sagas onto the baseline; what became of each, a line each.

        Sagas whose history does not replay on the baseline are kept and named; resetting them
        is the operator's call (`order-saga deploy recover --reset`).
        """
        candidate = WorkerDeploymentVersion(plan.deployment, plan.candidate)
        baseline = WorkerDeploymentVersion(plan.deployment, plan.baseline)
        recovered = await recover(self._client, candidate, baseline, plan.task_queue)
        return [str(saga) for saga in recovered]

    @activity.defn
    async def measure(self, plan: RolloutPlan, since: datetime) -> Measurement:
        """What the sagas each build started since `since` show."""
        candidate, baseline = await asyncio.gather(
            self._figures(plan, plan.candidate, since),
            self._figures(plan, plan.baseline, since),
        )
        return Measurement(candidate=candidate, baseline=baseline)

    async def _figures(self, plan: RolloutPlan, build: str, since: datetime) -> BuildFigures:
        window = (
            f"WorkflowType = 'OrderSaga' AND TemporalWorkerDeploymentVersion = "
            f"'{plan.deployment}:{build}' AND StartTime >= '{since.isoformat()}'"
        )
        waiting = f"{window} AND {ORDER_STATUS.name} = '{SagaState.NEEDS_ATTENTION.value}'"
        failed = f"{window} AND ExecutionStatus = 'Failed'"
        running = f"{window} AND ExecutionStatus = 'Running'"
        closed = f"{window} AND ExecutionStatus != 'Running'"
        started, finished, waits, failures = await asyncio.gather(
            self._count(window), self._count(closed), self._count(waiting), self._count(failed)
        )
        figures = BuildFigures(started=started, ended=finished, waiting=waits)
        await asyncio.gather(
            self._running(running, plan.limits, figures),
            self._failed(failed, failures, figures),
        )
        return figures

    async def _count(self, query: str) -> int:
        return (await self._client.count_workflows(query)).count

    async def _running(self, query: str, limits: Limits, figures: BuildFigures) -> None:
        """Count the sampled running sagas that are stuck or retrying, scaled to all of them."""
        total = await self._count(query)
        sagas = [saga async for saga in self._client.list_workflows(query, limit=SAMPLE)]
        if not sagas:
            return
        described = await asyncio.gather(
            *(self._client.get_workflow_handle(s.id, run_id=s.run_id).describe() for s in sagas)
        )
        scale = total / len(sagas)
        retried: Counter[str] = Counter()
        for description in described:
            raw = description.raw_description
            if raw.pending_workflow_task.attempt >= 2:
                figures.stuck += 1
                figures.stuck_error = figures.stuck_error or await self._task_failure(description)
            for pending in raw.pending_activities:
                if pending.attempt >= limits.retried_attempts:
                    name = pending.activity_type.name
                    retried[name] += 1
                    figures.retried_error.setdefault(name, pending.last_failure.message[:160])
        figures.stuck = round(figures.stuck * scale)
        figures.retried = {name: round(count * scale) for name, count in retried.items()}

    async def _task_failure(self, description: WorkflowExecutionDescription) -> str:
        """The failure of a saga's last failed workflow task, in a line."""
        handle = self._client.get_workflow_handle(description.id, run_id=description.run_id)
        last = "no failure recorded yet"
        async for event in handle.fetch_history_events():
            if event.HasField("workflow_task_failed_event_attributes"):
                failure = event.workflow_task_failed_event_attributes.failure
                last = f"{failure.application_failure_info.type}: {failure.message}"[:160]
        return last

    async def _failed(self, query: str, total: int, figures: BuildFigures) -> None:
        """Sort a sample of the failed sagas into refusals by step and the build's own, scaled."""
        sagas = [saga async for saga in self._client.list_workflows(query, limit=SAMPLE)]
        if not sagas:
            return
        types = await asyncio.gather(*(self._failure_type(saga) for saga in sagas))
        scale = total / len(sagas)
        refused: Counter[str] = Counter()
        own = 0
        for saga, failure_type in zip(sagas, types, strict=True):
            if failure_type in NOT_THE_BUILDS:
                step = saga.typed_search_attributes.get(FAILED_STEP)
                if failure_type in REFUSALS and step:
                    refused[step] += 1
            else:
                own += 1
        figures.failed_own = round(own * scale)
        figures.refused = {step: round(count * scale) for step, count in refused.items()}

    async def _failure_type(self, saga: WorkflowExecution) -> str:
        try:
            handle = self._client.get_workflow_handle(saga.id, run_id=saga.run_id)
            await handle.result(follow_runs=False)
        except WorkflowFailureError as err:
            cause = err.cause
            return cause.type or "" if isinstance(cause, ApplicationError) else type(cause).__name__
        return ""
