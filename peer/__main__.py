"""`python -m peer`: a worker of the hand-written saga, as `order-saga bench` runs it.

It connects as Temporal's SDK reads a client's settings (`temporalio.envconfig`: the address,
namespace, TLS and API key from `TEMPORAL_*` variables or a `temporal.toml` profile, as the
saga's worker reads them), with the SDK's default data converter (no encryption); it takes
`TASK_QUEUE` and `SERVICES_URL` from its environment, and polls on the saga's worker settings
(`worker.tuned_worker`) until SIGINT or SIGTERM. Like the saga's worker, and as Temporal advises
for short workflows, it is a version of a Worker Deployment and pins its sagas to it; bench
makes the version current once the worker polls.
"""

from __future__ import annotations

import asyncio
import os
import signal

import aiohttp
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.envconfig import ClientConfig
from temporalio.worker import WorkerDeploymentConfig

from peer.activities import ServiceCalls
from peer.saga import PeerOrderSaga
from worker import tuned_worker

#: The peer's worker version: a change to the peer saga would be a new build id.
VERSION = WorkerDeploymentVersion(deployment_name="order-saga-peer", build_id="1")


async def run() -> None:
    """Poll the task queue until SIGINT or SIGTERM."""
    client = await Client.connect(**ClientConfig.load_client_connect_config())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Keep-alive below the services' 5 s, so an idle connection is dropped here first.
    connector = aiohttp.TCPConnector(keepalive_timeout=4.0)
    async with aiohttp.ClientSession(connector=connector) as http:
        calls = ServiceCalls(http, os.environ["SERVICES_URL"]).activities()
        task_queue = os.environ["TASK_QUEUE"]
        deployment = WorkerDeploymentConfig(
            version=VERSION,
            use_worker_versioning=True,
            default_versioning_behavior=VersioningBehavior.PINNED,
        )
        async with tuned_worker(
            client,
            task_queue,
            [PeerOrderSaga],
            calls,
            deployment=deployment,
            workflow_modules=["peer"],
        ):
            await stop.wait()


if __name__ == "__main__":
    asyncio.run(run())
