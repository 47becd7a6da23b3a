"""Before a version gets sagas: its workers poll, and every service its steps call answers.

A version made current (or ramping) with no worker polling leaves new sagas waiting for one;
a version whose step calls a service that is not there sends every new saga down its
compensations. Both are refused here, before any saga reaches the version.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode

from infra.deployment import step_services
from infra.exits import StartFailure

#: A worker counts as polling if it began a poll this recently. The server lists a poller for
#: minutes after its worker stopped; a live worker polls again at least once a long poll (about
#: a minute).
POLLED_WITHIN = timedelta(seconds=90)

#: How long a service has to answer its health check.
HEALTH_TIMEOUT_S = 3.0

#: How long a version's polling workers have to record their steps' services.
RECORDED_WITHIN_S = 10.0

#: The path below a service's base URL that answers 2xx while the service can take calls.
HEALTH_PATH = "/healthz"


async def workers_by_build(client: Client, task_queue: str) -> Counter[str]:
    """How many workers of each build id poll `task_queue` for workflow tasks now."""
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    since = datetime.now(UTC) - POLLED_WITHIN
    live = {
        (poller.identity, poller.deployment_options.build_id)
        for poller in described.pollers
        if poller.last_access_time.ToDatetime(UTC) >= since
    }
    return Counter(build for _, build in live)


async def unanswered(services: dict[str, str]) -> dict[str, str]:
    """The steps whose service does not answer its health check, with what went wrong."""
    urls = set(services.values())
    async with httpx.AsyncClient(timeout=HEALTH_TIMEOUT_S) as http:
        answers = await asyncio.gather(*(_health(http, url) for url in urls))
    problems = {url: problem for url, problem in zip(urls, answers, strict=True) if problem}
    return {step: problems[url] for step, url in services.items() if url in problems}


async def _health(http: httpx.AsyncClient, url: str) -> str | None:
    """None if the service at `url` answers its health check; else what it did instead."""
    target = f"{url.rstrip('/')}{HEALTH_PATH}"
    try:
        answer = await http.get(target)
    except httpx.HTTPError as err:
        return f"nothing answers at {target} ({type(err).__name__})"
    if not answer.is_success:
        return f"{target} answered {answer.status_code}"
    return None


async def _recorded_services(
    client: Client, version: WorkerDeploymentVersion
) -> dict[str, str] | None:
    """The services `version`'s workers recorded; None if they have not within `RECORDED_WITHIN_S`.

    A worker records them a moment after it begins to poll, once the server knows its version.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(RECORDED_WITHIN_S):
            while True:
                try:
                    services = await step_services(client, version)
                except RPCError as err:
                    if err.status != RPCStatusCode.NOT_FOUND:
                        raise
                    services = None
                if services is not None:
                    return services
                await asyncio.sleep(0.2)
    return None


async def preflight(client: Client, version: WorkerDeploymentVersion, task_queue: str) -> None:
    """Refuse `version` unless its workers poll `task_queue` and its steps' services answer.

    Raises:
        StartFailure: One line naming what is missing: the workers, or each step whose service
            does not answer, with its address.
    """
    build = version.build_id
    if not (await workers_by_build(client, task_queue))[build]:
        raise StartFailure(
            f"no worker of build {build} polls {task_queue}: start one (python worker.py) with "
            "that code, then try again"
        )
    services = await _recorded_services(client, version)
    if services is None:
        raise StartFailure(
            f"build {build}'s workers have not said which services its steps call: restart "
            "them with this version of worker.py, then try again"
        )
    problems = await unanswered(services)
    if problems:
        steps = "; ".join(f"step {step}: {problem}" for step, problem in sorted(problems.items()))
        raise StartFailure(f"build {build} refused: {steps}")
