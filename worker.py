"""Run an order-saga worker (`python worker.py`); it stops cleanly on SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import timedelta

import httpx
import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities import build_activities, create_http_client
from ordersaga.logs import configure_logging
from ordersaga.search_attributes import ensure_registered
from ordersaga.settings import ServiceUrls, add_options
from ordersaga.temporal import connect, exit_process
from workflows import OrderSaga

log = structlog.get_logger()


def create_worker(
    client: Client, task_queue: str, http: httpx.AsyncClient, urls: ServiceUrls
) -> Worker:
    """A worker for the `OrderSaga` workflow and its activities, sharing one HTTP pool."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[OrderSaga],
        activities=build_activities(http, urls),
        graceful_shutdown_timeout=timedelta(seconds=10),
        # A dead worker's sagas wait this long on its sticky queue before another worker takes
        # them (the SDK default is 10 s); on a healthy worker a task is picked up in milliseconds.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags override environment variables, which override the defaults."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_options(parser, "--address", "--namespace", "--task-queue", "--services-url")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    """Poll the task queue until SIGINT or SIGTERM, then finish in-flight work and stop."""
    client = await connect(args.address, args.namespace)
    await ensure_registered(client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    urls = ServiceUrls.from_env(args.services_url)
    async with create_http_client() as http, create_worker(client, args.task_queue, http, urls):
        log.info("worker started", address=args.address, task_queue=args.task_queue)
        await stop.wait()
        log.info("worker stopping")


def main() -> None:
    """Entry point of `order-saga-worker`."""
    configure_logging()
    asyncio.run(run(parse_args()))
    exit_process(0)


if __name__ == "__main__":
    main()
