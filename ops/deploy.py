"""`order-saga deploy`: the saga's versions, which one runs new sagas, and retiring old ones.

A saga is PINNED to the build that started it. When a new build is made current, sagas already
running finish on the old build's workers, which must keep running until their version has
drained. A saga waiting for an operator may keep an old version from draining for days: once
it replays cleanly on the current build, `move-waiting` pins it to that build instead.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.deployment.v1 import WorkerDeploymentVersion as VersionProto
from temporalio.api.enums.v1 import WorkerDeploymentVersionStatus
from temporalio.api.workflow.v1 import VersioningOverride, WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import (
    DeleteWorkerDeploymentVersionRequest,
    UpdateWorkflowExecutionOptionsRequest,
)
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.service import RPCError
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from domain.saga import SagaState
from domain.search_attributes import ORDER_STATUS
from ordersaga.deployment import (
    build_id,
    current_version,
    describe_deployment,
    make_current,
    running_on,
    worker_version,
)
from ordersaga.exits import StartFailure
from ordersaga.settings import Group, Settings
from ordersaga.settings_cli import add_settings, load_settings
from ordersaga.temporal import connect
from workflows import OrderSaga

#: How long `deploy set-current` waits for a worker of the version to have polled.
SET_CURRENT_WAIT_S = 10.0


@dataclass(frozen=True)
class VersionState:
    """One version of the deployment, as `deploy status` shows it.

    Attributes:
        build_id: Its build id.
        routing: What the server routes to it: current, ramping, draining, drained or inactive.
        running: Sagas pinned to it that have not ended.
        waiting: Of those, sagas waiting for an operator.
    """

    build_id: str
    routing: str
    running: int
    waiting: int

    @property
    def drained(self) -> bool:
        """No new saga starts on it and none still runs on it: its workers may stop."""
        return self.routing not in ("current", "ramping") and self.running == 0


def _routing(status: WorkerDeploymentVersionStatus.ValueType) -> str:
    name = WorkerDeploymentVersionStatus.Name(status)
    return name.removeprefix("WORKER_DEPLOYMENT_VERSION_STATUS_").lower()


async def deployment_status(client: Client, deployment_name: str) -> list[VersionState]:
    """Every version of `deployment_name`, newest first.

    Raises:
        StartFailure: There is no such deployment (no worker of it has polled yet).
    """
    info = await describe_deployment(client, deployment_name)
    if info is None:
        raise StartFailure(
            f"no Worker Deployment {deployment_name!r} on this server: start a worker "
            "(python worker.py) so that its version is registered"
        )
    summaries = sorted(
        info.version_summaries,
        key=lambda summary: summary.create_time.ToDatetime(),
        reverse=True,
    )
    states = []
    for summary in summaries:
        version = WorkerDeploymentVersion(deployment_name, summary.deployment_version.build_id)
        pinned = running_on(version)
        waiting = f"{pinned} AND {ORDER_STATUS.name} = '{SagaState.NEEDS_ATTENTION.value}'"
        states.append(
            VersionState(
                build_id=version.build_id,
                routing=_routing(summary.status),
                running=(await client.count_workflows(pinned)).count,
                waiting=(await client.count_workflows(waiting)).count,
            )
        )
    return states


def status_table(states: list[VersionState]) -> str:
    """`deploy status`'s table."""
    lines = [f"{'build id':<28} {'routing':<9} {'running':>7} {'waiting':>7}  drained"]
    for state in states:
        drained = "yes" if state.drained else "no"
        lines.append(
            f"{state.build_id:<28} {state.routing:<9} {state.running:>7} {state.waiting:>7}  "
            f"{drained}"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Move:
    """What `move_waiting` did with one saga: moved, or kept where it was, and why."""

    workflow_id: str
    moved: bool
    reason: str


async def move_waiting(
    client: Client, old: WorkerDeploymentVersion, new: WorkerDeploymentVersion
) -> list[Move]:
    """Pin the sagas of `old` that wait for an operator to `new`, where that is safe.

    Safe means the saga's history so far replays on this code, which must be `new`'s build:
    then `new`'s workers continue it exactly where it stands. A saga whose history does not
    replay stays on `old`, whose workers must then keep running until it ends.

    Raises:
        StartFailure: This code is not `new`'s build, so it cannot tell what is safe.
    """
    if new.build_id.rpartition("-")[2] != build_id():
        raise StartFailure(
            f"this code is build {build_id()}, not {new.build_id}: run move-waiting from the "
            "checkout of the build the sagas move to"
        )
    query = f"{running_on(old)} AND {ORDER_STATUS.name} = '{SagaState.NEEDS_ATTENTION.value}'"
    replayer = Replayer(workflows=[OrderSaga], data_converter=client.data_converter)
    moves = []
    async for saga in client.list_workflows(query):
        handle = client.get_workflow_handle(saga.id, run_id=saga.run_id)
        history = await handle.fetch_history()
        replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        failure = replayed.replay_failure
        if isinstance(failure, NondeterminismError):
            reason = f"its history does not replay on {new.build_id}"
            moves.append(Move(saga.id, moved=False, reason=reason))
            continue
        if failure is not None:
            raise StartFailure(
                f"cannot replay {saga.id} here ({failure}): give this command the workers' "
                "settings (payload keys, namespace)"
            ) from failure
        await client.workflow_service.update_workflow_execution_options(
            _pin_request(client, saga.id, saga.run_id, new)
        )
        moves.append(Move(saga.id, moved=True, reason=f"pinned to {new.build_id}"))
    return moves


def _pin_request(
    client: Client, workflow_id: str, run_id: str, version: WorkerDeploymentVersion
) -> UpdateWorkflowExecutionOptionsRequest:
    pinned = VersioningOverride.PinnedOverride(
        version=_version_proto(version),
        behavior=VersioningOverride.PinnedOverrideBehavior.PINNED_OVERRIDE_BEHAVIOR_PINNED,
    )
    return UpdateWorkflowExecutionOptionsRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        workflow_execution_options=WorkflowExecutionOptions(
            versioning_override=VersioningOverride(pinned=pinned)
        ),
        update_mask=FieldMask(paths=["versioning_override"]),
        identity=client.identity,
    )


def _version_proto(version: WorkerDeploymentVersion) -> VersionProto:
    return VersionProto(deployment_name=version.deployment_name, build_id=version.build_id)


async def retire(client: Client, version: WorkerDeploymentVersion) -> None:
    """Remove a drained version from its deployment, once its workers have stopped.

    Raises:
        StartFailure: It has not drained, or its workers still poll.
    """
    states = {
        state.build_id: state for state in await deployment_status(client, version.deployment_name)
    }
    state = states.get(version.build_id)
    if state is None:
        raise StartFailure(f"no version {version.build_id} in {version.deployment_name}")
    if not state.drained:
        raise StartFailure(
            f"version {version.build_id} has not drained ({state.routing}, {state.running} "
            "sagas running): keep its workers until `order-saga deploy status` says drained"
        )
    try:
        await client.workflow_service.delete_worker_deployment_version(
            DeleteWorkerDeploymentVersionRequest(
                namespace=client.namespace,
                deployment_version=_version_proto(version),
                identity=client.identity,
            )
        )
    except RPCError as err:
        raise StartFailure(
            f"cannot retire {version.build_id}: {err.message}; stop its workers, then try "
            "again: the server counts them as polling, and the version as draining, for some "
            "minutes after"
        ) from None


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `order-saga deploy` and its actions."""
    parser = commands.add_parser(
        "deploy", help="the saga's versions: which runs new sagas, which have drained"
    )
    actions = parser.add_subparsers(dest="action", required=True)
    for name, help_text in (
        ("status", "each version with its running and waiting sagas, and whether it drained"),
        ("set-current", "send new sagas to a version (by default this code's build)"),
        ("move-waiting", "pin sagas waiting for an operator on --from to this code's build"),
        ("retire", "remove a drained version whose workers have stopped"),
    ):
        action = actions.add_parser(name, help=help_text)
        add_settings(action, Group.TEMPORAL, Group.TLS, Group.CODEC, Group.DEPLOYMENT)
        if name in ("set-current", "retire"):
            action.add_argument("--build-id", help="the version [default: this code's build]")
        if name == "move-waiting":
            action.add_argument("--from", dest="old", required=True, help="the old build id")


async def run_command(args: argparse.Namespace) -> int:
    """Run `order-saga deploy ACTION`."""
    settings: Settings = load_settings(args, f"order-saga deploy {args.action}")
    client = await connect(settings=settings)
    name = settings.deployment_name
    this_build = worker_version(settings)
    chosen = WorkerDeploymentVersion(name, getattr(args, "build_id", None) or this_build.build_id)
    if args.action == "status":
        print(f"deployment {name}, current: {await current_version(client, name) or 'none'}")
        print(status_table(await deployment_status(client, name)))
    elif args.action == "set-current":
        await make_current(client, chosen, within_s=SET_CURRENT_WAIT_S)
        print(f"{chosen.build_id} is now current: new sagas start on it")
    elif args.action == "move-waiting":
        old = WorkerDeploymentVersion(name, args.old)
        for move in await move_waiting(client, old, this_build):
            print(f"{move.workflow_id}: {'moved' if move.moved else 'kept'}, {move.reason}")
    else:
        await retire(client, chosen)
        print(f"{chosen.build_id} retired")
    return 0
