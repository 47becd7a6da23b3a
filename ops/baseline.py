"""The baseline worker: `BaselineWorkflow` and its no-op activities on the saga worker's settings.

Run by `order-saga bench` as `python -m ops.baseline`, through `worker_process`, so it
reads `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE` and `TASK_QUEUE` from its environment.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from temporalio import activity

from infra.exits import run_to_exit
from infra.settings import DEFAULT_TASK_QUEUE
from infra.temporal import connect
from ops.baseline_workflow import NOOP_ACTIVITIES, BaselineWorkflow
from worker import tuned_worker

#: How bench starts this worker (`worker_process(..., command=COMMAND)`).
COMMAND = (sys.executable, "-m", "ops.baseline")


def noop_activities() -> list[Callable[..., Any]]:
    """One async activity per name in `NOOP_ACTIVITIES`, each doing nothing."""

    def make(name: str) -> Callable[..., Any]:
        @activity.defn(name=name)
        async def noop(order_id: str) -> None:
            """Do nothing: the cost measured is Temporal's, not the activity's."""

        return noop

    return [make(name) for name in NOOP_ACTIVITIES]


async def run() -> None:
    """Poll the task queue until SIGINT or SIGTERM."""
    client = await connect()  # the address and namespace from the settings, as worker.py
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task_queue = os.environ.get("TASK_QUEUE") or DEFAULT_TASK_QUEUE
    async with tuned_worker(client, task_queue, [BaselineWorkflow], noop_activities()):
        await stop.wait()


if __name__ == "__main__":
    run_to_exit(lambda: asyncio.run(run()))
