"""Moving the running sagas of one build onto another: `order-saga deploy recover`.

A saga is PINNED to the build that started it. When that build is broken, or retired with sagas
still waiting for an operator, each of its sagas is replayed against this code, which must be
the build they go to:

- its history replays cleanly: a versioning override pins it to that build, whose workers carry
  it on exactly where it stands (its next workflow task, or its activity's next attempt, runs
  there);
- it does not (its steps differ in that build): it is reset to the last workflow task that does
  replay, on that build, which runs the saga on from there. A step it had done after that point
  runs again under the same idempotency key, so its service answers as it did the first time.
  Resetting is asked for (`--reset`); without it the saga is kept and the command says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflow.v1 import (
    PostResetOperation,
    VersioningOverride,
    WorkflowExecutionOptions,
)
from temporalio.api.workflowservice.v1 import (
    ResetWorkflowExecutionRequest,
    UpdateWorkflowExecutionOptionsRequest,
)
from temporalio.client import Client, WorkflowHistory
from temporalio.common import WorkerDeploymentVersion
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from infra.deployment import build_id, running_on, version_proto
from infra.exits import StartFailure
from infra.runtime import replay_runtime
from ops.preflight import preflight
from workflows import OrderSaga


class Outcome(StrEnum):
    """What became of one saga."""

    MOVED = "moved"
    RESET = "reset"
    KEPT = "kept"


@dataclass(frozen=True)
class Recovered:
    """One saga of the build recovered from: what became of it, and, in words, how or why."""

    workflow_id: str
    outcome: Outcome
    detail: str

    def __str__(self) -> str:
        return f"{self.workflow_id}: {self.detail}"


def check_this_build(version: WorkerDeploymentVersion) -> None:
    """Refuse to judge which sagas replay on `version` unless this code is its build.

    Raises:
        StartFailure: This code is another build.
    """
    if version.build_id.rpartition("-")[2] != build_id():
        raise StartFailure(
            f"this code is build {build_id()}, not {version.build_id}: run recover from the "
            "checkout of the build the sagas move to"
        )


async def recover(
    client: Client,
    source: WorkerDeploymentVersion,
    target: WorkerDeploymentVersion,
    task_queue: str,
    *,
    reset: bool = False,
) -> list[Recovered]:
    """Move every running saga of `source` onto `target`, this code's build, polling `task_queue`.

    Safe to run again after it was cut short: a saga already moved no longer runs on `source`,
    and a reset is sent with a request id of its own, so the server makes it once.

    Returns:
        What became of each saga; empty if none ran on `source`.

    Raises:
        StartFailure: This code is not `target`'s build, `target`'s preflight failed (no saga
            goes to a version no worker runs), or a history cannot be replayed here (the
            payload keys or the namespace differ from the workers').
    """
    check_this_build(target)
    await preflight(client, target, task_queue)
    replayer = Replayer(
        workflows=[OrderSaga], data_converter=client.data_converter, runtime=replay_runtime()
    )
    sagas = [(saga.id, saga.run_id) async for saga in client.list_workflows(running_on(source))]
    recovered = []
    for workflow_id, run_id in sagas:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        if await _replays(replayer, history):
            await client.workflow_service.update_workflow_execution_options(
                UpdateWorkflowExecutionOptionsRequest(
                    namespace=client.namespace,
                    workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
                    workflow_execution_options=_pinned_to(target),
                    update_mask=FieldMask(paths=["versioning_override"]),
                    identity=client.identity,
                )
            )
            recovered.append(
                Recovered(workflow_id, Outcome.MOVED, f"moved, pinned to {target.build_id}")
            )
            continue
        point = await _last_replaying_task(replayer, history)
        if not reset:
            detail = (
                f"kept, its history does not replay on {target.build_id} after event {point}; "
                f"--reset starts it again from there on {target.build_id}"
            )
            recovered.append(Recovered(workflow_id, Outcome.KEPT, detail))
            continue
        await client.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
                reason=f"recovered from build {source.build_id} onto {target.build_id}",
                workflow_task_finish_event_id=point,
                request_id=f"recover-{run_id}-{target.build_id}",
                post_reset_operations=[_pin_after_reset(target)],
                identity=client.identity,
            )
        )
        detail = f"reset to event {point}, on {target.build_id}"
        recovered.append(Recovered(workflow_id, Outcome.RESET, detail))
    return recovered


async def _replays(replayer: Replayer, history: WorkflowHistory) -> bool:
    """Whether `history` replays on this code without a non-determinism error.

    Raises:
        StartFailure: It cannot be replayed here for another reason.
    """
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    failure = replayed.replay_failure
    if failure is None:
        return True
    if isinstance(failure, NondeterminismError):
        return False
    raise StartFailure(
        f"cannot replay {history.workflow_id} here ({failure}): give this command the "
        "workers' settings (payload keys, namespace)"
    ) from failure


async def _last_replaying_task(replayer: Replayer, history: WorkflowHistory) -> int:
    """The id of the last completed workflow task whose history before it replays here.

    A reset to it keeps the events up to the task's start and runs the task again on this
    code, so what must replay is the history before its completion. The first task always
    qualifies: before it the saga has done nothing.
    """
    completed = [
        index
        for index, event in enumerate(history.events)
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    for index in reversed(completed[1:]):
        prefix = WorkflowHistory(history.workflow_id, history.events[:index])
        if await _replays(replayer, prefix):
            return history.events[index].event_id
    return history.events[completed[0]].event_id


def _pinned_to(version: WorkerDeploymentVersion) -> WorkflowExecutionOptions:
    pinned = VersioningOverride.PinnedOverride(
        version=version_proto(version),
        behavior=VersioningOverride.PinnedOverrideBehavior.PINNED_OVERRIDE_BEHAVIOR_PINNED,
    )
    return WorkflowExecutionOptions(versioning_override=VersioningOverride(pinned=pinned))


def _pin_after_reset(version: WorkerDeploymentVersion) -> PostResetOperation:
    return PostResetOperation(
        update_workflow_options=PostResetOperation.UpdateWorkflowOptions(
            workflow_execution_options=_pinned_to(version),
            update_mask=FieldMask(paths=["versioning_override"]),
        )
    )
