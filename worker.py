"""Run an order-saga worker (`python worker.py`); it stops cleanly on SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import structlog
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.service import RPCError
from temporalio.worker import Interceptor, Worker, WorkerDeploymentConfig
from temporalio.worker.workflow_sandbox import SandboxRestrictions

from activities.http import ServiceClient, create_http_client
from activities.inventory import InventoryActivities
from activities.orders import OrderActivities
from activities.payment import PaymentActivities
from activities.shipping import ShippingActivities
from infra.codec import CodecMismatch, check_codec_agrees
from infra.deployment import (
    deployment_config,
    is_current,
    make_current_hint,
    record_step_services,
    worker_version,
)
from infra.eventbus import EventBus, open_event_bus
from infra.eventbus.publishing import EventPublishingInterceptor
from infra.exits import StartFailure, run_to_exit
from infra.log_context import ActivityOutcomes
from infra.logs import configure_logging
from infra.runtime import worker_runtime
from infra.sandbox import PrecompiledSandboxRunner
from infra.settings import Group, ServiceUrls, Settings
from infra.settings_cli import add_settings, load_settings
from infra.temporal import connect, ensure_registered
from infra.tracing import configure_tracing
from ops.rollout.worker import rollout_worker
from workflows import OrderSaga
from workflows.order_saga import publish_events
from workflows.order_steps import ORDER_STEPS, check_registered

log = structlog.get_logger()


#: Modules workflows import that hold no state and do no I/O: the saga's shared types and
#: the libraries they are built on.
PURE_MODULES = (
    "domain",
    "ports",
    "pydantic",
    "pydantic_core",
    "pydantic_extra_types",
    "annotated_types",
)

#: The project's workflows and their helpers, deterministic by construction (they act only
#: through `temporalio.workflow`) and holding no state between runs. Shared rather than
#: re-imported for every run, so the workflow's decorators check its class once per worker, not
#: once per saga (docs/performance.md). The sandbox still checks them on every
#: path: the workflow unit tests and the replay of every recorded history run on the SDK's
#: default sandbox, which re-imports them and restricts every call they make (see docs/code.md).
WORKFLOW_MODULES = ("workflows", "temporal_saga")


def create_worker(
    client: Client,
    task_queue: str,
    http: aiohttp.ClientSession,
    urls: ServiceUrls,
    bus: EventBus,
    version: WorkerDeploymentVersion | None,
) -> Worker:
    """A worker for the `OrderSaga` workflow and its activities, sharing one HTTP pool.

    Its activities publish the saga events they carry on `bus`. It is `version` of its Worker
    Deployment (None: unversioned, as on the time-skipping test server, which has no
    deployments).
    """
    return tuned_worker(
        client,
        task_queue,
        [OrderSaga],
        order_activities(http, urls),
        # ActivityOutcomes first: the time it logs includes publishing the events.
        interceptors=[ActivityOutcomes(), EventPublishingInterceptor(bus)],
        deployment=deployment_config(version) if version else None,
    )


@asynccontextmanager
async def deployed_worker(
    client: Client,
    task_queue: str,
    http: aiohttp.ClientSession,
    urls: ServiceUrls,
    bus: EventBus,
    version: WorkerDeploymentVersion,
) -> AsyncIterator[Worker]:
    """`create_worker`'s worker as a version deploys need it: polling, with its rollouts' worker.

    Its steps' services are recorded on its version (what a deploy's preflight checks), and it
    runs the rollouts that start from its build (`ops.rollout`).
    """
    async with (
        create_worker(client, task_queue, http, urls, bus, version) as worker,
        rollout_worker(client, task_queue, version),
    ):
        recording = asyncio.create_task(_record_services(client, version, urls))
        try:
            yield worker
        finally:
            recording.cancel()


async def _record_services(
    client: Client, version: WorkerDeploymentVersion, urls: ServiceUrls
) -> None:
    """Record the steps' services on `version`, again each second while the server is away.

    In the background: a server restarting as the worker starts must not stop the worker.
    """
    while True:
        try:
            await record_step_services(client, version, step_services(urls))
            return
        except (RPCError, StartFailure) as err:
            log.warning("could not record the steps' services on the version yet", error=str(err))
        await asyncio.sleep(1.0)


def order_activities(http: aiohttp.ClientSession, urls: ServiceUrls) -> list[Callable[..., Any]]:
    """Every activity the saga calls: each port's adapter on its service, sharing `http`.

    The one place the adapters are chosen: a shop swaps in its own provider's adapter here.

    Raises:
        StepTableError: A step's activity or compensation is left without an adapter.
    """
    inventory = InventoryActivities(ServiceClient(http, urls["inventory"]))
    payment = PaymentActivities(ServiceClient(http, urls["payment"]))
    shipping = ShippingActivities(ServiceClient(http, urls["shipping"]))
    orders = OrderActivities(ServiceClient(http, urls["orders"]))
    activities: list[Callable[..., Any]] = [
        inventory.reserve_inventory,
        inventory.release_inventory,
        payment.charge_payment,
        payment.refund_payment,
        shipping.schedule_shipment,
        shipping.cancel_shipment,
        orders.confirm_order,
        orders.cancel_order,
        publish_events,
    ]
    check_registered(activities)
    return activities


def step_services(urls: ServiceUrls) -> dict[str, str]:
    """The base URL of the service each step calls, by step name, without any credentials."""
    return {row.name: _without_userinfo(urls[row.port.name]) for row in ORDER_STEPS}


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def tuned_worker(
    client: Client,
    task_queue: str,
    workflows: Sequence[type],
    activities: Sequence[Callable[..., Any]],
    interceptors: Sequence[Interceptor] = (),
    deployment: WorkerDeploymentConfig | None = None,
    workflow_modules: Sequence[str] = WORKFLOW_MODULES,
) -> Worker:
    """A worker with the project's settings.

    `order-saga bench` runs its baseline and the hand-written peer saga on these too, the
    peer's own package (`workflow_modules`) shared through the sandbox as the saga's is.
    """
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=activities,
        interceptors=interceptors,
        deployment_config=deployment,
        # The sandbox re-imports a workflow's modules for every run; modules that are pure
        # (no I/O, no clock, no randomness) are safe to share, and sharing them saves the work.
        workflow_runner=PrecompiledSandboxRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(
                *PURE_MODULES, *workflow_modules
            )
        ),
        graceful_shutdown_timeout=timedelta(seconds=10),
        # A dead worker's sagas wait this long on its sticky queue before another worker takes
        # them (the SDK default is 10 s); on a healthy worker a task is picked up in milliseconds.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
    )


#: The settings a worker takes (`--help` lists them).
WORKER_SETTINGS = (
    Group.TEMPORAL,
    Group.TLS,
    Group.CODEC,
    Group.SERVICES,
    Group.DATA,
    Group.OBSERVABILITY,
    Group.DEPLOYMENT,
)


def parse_args(argv: list[str] | None = None) -> Settings:
    """Flags override environment variables, which override Temporal's profile and defaults."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_settings(parser, *WORKER_SETTINGS)
    return load_settings(parser.parse_args(argv), parser.prog)


async def run(settings: Settings) -> None:
    """Poll the task queue until SIGINT or SIGTERM, then finish in-flight work and stop."""
    # The runtime serves the worker's metrics (the SDK's and the saga's) if an address is set.
    try:
        runtime = worker_runtime(settings.metrics_address)
    except ValueError as err:  # the Prometheus exporter could not bind
        raise StartFailure(
            f"cannot serve metrics on METRICS_ADDRESS {settings.metrics_address} ({err}): "
            "choose a free port, or leave it unset"
        ) from err
    client = await connect(settings=settings, runtime=runtime)
    try:
        await check_codec_agrees(client)
    except CodecMismatch as err:
        raise StartFailure(f"{err}; the worker did not start") from err
    await ensure_registered(client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    urls = settings.service_urls
    bus = open_event_bus(settings.event_bus_url)
    await bus.check()
    version = worker_version(settings)
    async with (
        create_http_client() as http,
        deployed_worker(client, settings.task_queue, http, urls, bus, version),
    ):
        log.info(
            "worker started",
            address=settings.temporal_address,
            task_queue=settings.task_queue,
            deployment=version.deployment_name,
            build_id=version.build_id,
        )
        # Only a hint: a server restarting just now must not stop the worker.
        with contextlib.suppress(RPCError):
            if not await is_current(client, version):
                log.warning(make_current_hint(version, settings.temporal_address))
        await stop.wait()
        log.info("worker stopping")
    await bus.close()


def main() -> None:
    """Entry point of `order-saga-worker`."""
    settings = parse_args()
    configure_logging(settings.logging_level, json=settings.log_json)
    configure_tracing("order-saga-worker", otlp_endpoint=settings.otel_exporter_otlp_endpoint)
    run_to_exit(lambda: asyncio.run(run(settings)))


if __name__ == "__main__":
    main()
