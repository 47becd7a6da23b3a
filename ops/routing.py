"""Which versions of the saga get new sagas: status, ramp, current, rollback and retiring.

No version gets new sagas before its preflight passes (`ops.preflight`). `rollback` sends them
back to the version before: it stops a ramp, or makes the previous current version current.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.api.deployment.v1 import WorkerDeploymentInfo
from temporalio.api.enums.v1 import WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import DeleteWorkerDeploymentVersionRequest
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.service import RPCError

from domain.saga import SagaState
from infra.deployment import (
    describe_deployment,
    make_current,
    running_on,
    set_ramping,
    stop_ramping,
    version_proto,
)
from infra.exits import StartFailure
from ops.preflight import preflight, workers_by_build
from workflows.search_attributes import ORDER_STATUS

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
