"""`order-saga deploy`: the saga's versions, which ones run new sagas, and retiring old ones.

A saga is PINNED to the build that started it. When a new build is made current (or ramps, for
a share of new sagas), sagas already running finish on the old build's workers, which must keep
running until their version has drained. No version gets new sagas before its preflight
(`ops.preflight`) passes; `rollback` sends them back to the version before. A saga waiting for
an operator may keep an old version from draining for days, and a broken build's sagas need
a build that can run them: `recover` moves them (`ops.recovery`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from temporalio.api.deployment.v1 import WorkerDeploymentInfo
from temporalio.api.enums.v1 import WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import (
    DeleteWorkerDeploymentVersionRequest,
)
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.service import RPCError

from domain.saga import SagaState
from domain.search_attributes import ORDER_STATUS
from ops.preflight import preflight, workers_by_build
from ops.recovery import recover
from ordersaga.deployment import (
    describe_deployment,
    make_current,
    running_on,
    set_ramping,
    stop_ramping,
    version_proto,
    worker_version,
)
from ordersaga.exits import StartFailure
from ordersaga.settings import Group, Settings
from ordersaga.settings_cli import add_settings, load_settings
from ordersaga.temporal import connect

#: How long `deploy set-current` waits for a worker of the version to have polled.
SET_CURRENT_WAIT_S = 10.0


@dataclass(frozen=True)
class VersionState:
    """One version of the deployment, as `deploy status` shows it.

    Attributes:
        build_id: Its build id.
        routing: What the server routes to it: current, ramping, draining, drained or inactive.
        ramp: The share of new sagas it gets, in percent, while it ramps; else 0.
        workers: Its workers polling the task queue now.
        running: Sagas pinned to it that have not ended.
        waiting: Of those, sagas waiting for an operator.
    """

    build_id: str
    routing: str
    ramp: float
    workers: int
    running: int
    waiting: int

    @property
    def drained(self) -> bool:
        """No new saga starts on it and none still runs on it: its workers may stop."""
        return self.routing not in ("current", "ramping") and self.running == 0


def _routing(status: WorkerDeploymentVersionStatus.ValueType) -> str:
    name = WorkerDeploymentVersionStatus.Name(status)
    return name.removeprefix("WORKER_DEPLOYMENT_VERSION_STATUS_").lower()


async def _described(client: Client, deployment_name: str) -> WorkerDeploymentInfo:
    info = await describe_deployment(client, deployment_name)
    if info is None:
        raise StartFailure(
            f"no Worker Deployment {deployment_name!r} on this server: start a worker "
            "(python worker.py) so that its version is registered"
        )
    return info


async def deployment_status(
    client: Client, deployment_name: str, task_queue: str
) -> list[VersionState]:
    """Every version of `deployment_name`, newest first, with its workers on `task_queue`.

    Raises:
        StartFailure: There is no such deployment (no worker of it has polled yet).
    """
    info = await _described(client, deployment_name)
    routing = info.routing_config
    workers = await workers_by_build(client, task_queue)
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
        ramping = routing.ramping_deployment_version.build_id == version.build_id
        states.append(
            VersionState(
                build_id=version.build_id,
                routing=_routing(summary.status),
                ramp=routing.ramping_version_percentage if ramping else 0.0,
                workers=workers[version.build_id],
                running=(await client.count_workflows(pinned)).count,
                waiting=(await client.count_workflows(waiting)).count,
            )
        )
    return states


def routing_line(deployment_name: str, states: list[VersionState]) -> str:
    """Where new sagas go: the current version, and the ramping one with its share."""
    current = next((state.build_id for state in states if state.routing == "current"), "none")
    line = f"deployment {deployment_name}, current: {current}"
    for state in states:
        if state.routing == "ramping":
            line += f", ramping: {state.build_id} at {state.ramp:g}%"
    return line


def status_table(states: list[VersionState]) -> str:
    """`deploy status`'s table."""
    lines = [
        f"{'build id':<28} {'routing':<9} {'ramp':>5} {'workers':>7} {'running':>7} "
        f"{'waiting':>7}  drained"
    ]
    for state in states:
        drained = "yes" if state.drained else "no"
        ramp = f"{state.ramp:g}%" if state.routing == "ramping" else "-"
        lines.append(
            f"{state.build_id:<28} {state.routing:<9} {ramp:>5} {state.workers:>7} "
            f"{state.running:>7} {state.waiting:>7}  {drained}"
        )
    return "\n".join(lines)


async def ramp(
    client: Client, version: WorkerDeploymentVersion, percent: float, task_queue: str
) -> None:
    """Send `percent` of new sagas to `version`, once its preflight passes.

    Raises:
        StartFailure: `version` is current already, the percentage is out of range, or the
            preflight failed.
    """
    if not 0 < percent < 100:
        raise StartFailure(
            f"--percent {percent:g}: give a share between 0 and 100 (exclusive); "
            "set-current sends all new sagas"
        )
    info = await _described(client, version.deployment_name)
    if info.routing_config.current_deployment_version.build_id == version.build_id:
        raise StartFailure(f"{version.build_id} is current already: there is nothing to ramp")
    await preflight(client, version, task_queue)
    await set_ramping(client, version, percent)


async def set_current(client: Client, version: WorkerDeploymentVersion, task_queue: str) -> None:
    """Send every new saga to `version`, once its preflight passes.

    Raises:
        StartFailure: The preflight failed, or the server did not know the version in time.
    """
    await preflight(client, version, task_queue)
    await make_current(client, version, within_s=SET_CURRENT_WAIT_S)


def previous_version(info: WorkerDeploymentInfo) -> str | None:
    """The build id that was current before the current one; None if none was."""
    current = info.routing_config.current_deployment_version.build_id
    before = [
        summary
        for summary in info.version_summaries
        if summary.deployment_version.build_id != current and summary.HasField("last_current_time")
    ]
    if not before:
        return None
    latest = max(before, key=lambda summary: summary.last_current_time.ToDatetime())
    return latest.deployment_version.build_id


async def rollback(client: Client, deployment_name: str, task_queue: str) -> str:
    """New sagas back to the version before: a ramp stops, or the previous version is current.

    Returns:
        What it did, in one line.

    Raises:
        StartFailure: Nothing ramps and no version was current before this one, or the
            previous version's preflight failed (its workers are gone, say).
    """
    info = await _described(client, deployment_name)
    routing = info.routing_config
    current = routing.current_deployment_version.build_id
    ramping = routing.ramping_deployment_version.build_id
    if ramping:
        await stop_ramping(client, deployment_name)
        return f"{ramping} no longer ramps: every new saga starts on {current or 'no version'}"
    previous = previous_version(info)
    if previous is None:
        raise StartFailure(
            f"no version of {deployment_name} was current before {current or 'none'}: "
            "there is nothing to roll back to"
        )
    await set_current(client, WorkerDeploymentVersion(deployment_name, previous), task_queue)
    return f"{previous} is current again: new sagas start on it, none on {current}"


async def retire(client: Client, version: WorkerDeploymentVersion, task_queue: str) -> None:
    """Remove a drained version from its deployment, once its workers have stopped.

    Raises:
        StartFailure: It has not drained, or its workers still poll.
    """
    states = {
        state.build_id: state
        for state in await deployment_status(client, version.deployment_name, task_queue)
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
                deployment_version=version_proto(version),
                identity=client.identity,
            )
        )
    except RPCError as err:
        raise StartFailure(
            f"cannot retire {version.build_id}: {err.message}; stop its workers, then try "
            "again: the server counts them as polling, and the version as draining, for some "
            "minutes after"
        ) from None


async def _recover(
    client: Client, args: argparse.Namespace, target: WorkerDeploymentVersion, task_queue: str
) -> None:
    source = WorkerDeploymentVersion(target.deployment_name, args.old)
    recovered = await recover(client, source, target, task_queue, reset=args.reset)
    if not recovered:
        raise StartFailure(f"no saga runs on {args.old}: there is nothing to recover")
    for saga in recovered:
        print(saga)


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `order-saga deploy` and its actions."""
    parser = commands.add_parser(
        "deploy", help="the saga's versions: which run new sagas, which have drained"
    )
    actions = parser.add_subparsers(dest="action", required=True)
    for name, help_text in (
        (
            "status",
            "each version: its share of new sagas, workers, sagas, whether it drained",
        ),
        ("set-current", "send every new saga to a version (by default this code's build)"),
        ("ramp", "send a share of new sagas to a version (by default this code's build)"),
        ("rollback", "new sagas back to the version before: stop a ramp, or the previous current"),
        ("recover", "move the running sagas of --from onto this code's build"),
        ("retire", "remove a drained version whose workers have stopped"),
    ):
        action = actions.add_parser(name, help=help_text)
        add_settings(action, Group.TEMPORAL, Group.TLS, Group.CODEC, Group.DEPLOYMENT)
        if name in ("set-current", "ramp", "retire"):
            action.add_argument("--build-id", help="the version [default: this code's build]")
        if name == "ramp":
            action.add_argument(
                "--percent", type=float, required=True, help="share of new sagas, 0 < N < 100"
            )
        if name == "recover":
            action.add_argument("--from", dest="old", required=True, help="their build id")
            action.add_argument(
                "--to", help="the build they go to, this code's [default: this code's build]"
            )
            action.add_argument(
                "--reset",
                action="store_true",
                help="reset a saga whose history does not replay here to its last task that does",
            )


async def run_command(args: argparse.Namespace) -> int:
    """Run `order-saga deploy ACTION`."""
    settings: Settings = load_settings(args, f"order-saga deploy {args.action}")
    client = await connect(settings=settings)
    name, task_queue = settings.deployment_name, settings.task_queue
    this_build = worker_version(settings)
    chosen = WorkerDeploymentVersion(name, getattr(args, "build_id", None) or this_build.build_id)
    if args.action == "status":
        states = await deployment_status(client, name, task_queue)
        print(routing_line(name, states))
        print(status_table(states))
    elif args.action == "set-current":
        await set_current(client, chosen, task_queue)
        print(f"{chosen.build_id} is now current: new sagas start on it")
    elif args.action == "ramp":
        await ramp(client, chosen, args.percent, task_queue)
        print(f"{chosen.build_id} ramps: {args.percent:g}% of new sagas start on it")
    elif args.action == "rollback":
        print(await rollback(client, name, task_queue))
    elif args.action == "recover":
        target = WorkerDeploymentVersion(name, args.to or this_build.build_id)
        await _recover(client, args, target, task_queue)
    else:
        await retire(client, chosen, task_queue)
        print(f"{chosen.build_id} retired")
    return 0
