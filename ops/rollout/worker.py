"""The worker that runs rollouts, beside the saga's in every worker process (`worker.py`)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.worker import Worker

from infra.deployment import rollout_queue
from ops.rollout.activities import RolloutActivities
from ops.rollout.workflow import DeployRollout


def rollout_worker(client: Client, task_queue: str, version: WorkerDeploymentVersion) -> Worker:
    """The worker of the rollouts that `version`'s workers on `task_queue` run (unversioned)."""
    activities = RolloutActivities(client)
    return Worker(
        client,
        task_queue=rollout_queue(task_queue, version.build_id),
        workflows=[DeployRollout],
        activities=[
            activities.route_share,
            activities.stop_ramping,
            activities.measure,
            activities.recover_candidate,
        ],
    )
