"""A trip booking saga: flight, hotel, car; the car is refused, so the rest is undone in reverse.

Run it with `python trip.py [path to temporal-test-server]` (without a path, the SDK downloads
the time-skipping test server). It prints what was booked and cancelled, in order.
"""

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporal_saga import Saga
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

log: list[str] = []


@activity.defn
async def book(what: str) -> None:
    """Book `what`; the car is refused (non-retryable: nothing happened, nothing to undo)."""
    if what == "car":
        raise ApplicationError("no car left", non_retryable=True)
    log.append(f"booked {what}")


@activity.defn
async def cancel(what: str) -> None:
    """Cancel the booking of `what`."""
    log.append(f"cancelled {what}")


def call(action: Callable[[str], Awaitable[None]], what: str) -> Callable[[], Awaitable[None]]:
    """`action(what)` as an activity, with the one timeout every call here takes."""
    timeout = timedelta(seconds=10)
    return lambda: workflow.execute_activity(action, what, start_to_close_timeout=timeout)


@workflow.defn
class Trip:
    """Books a trip: every booking, or none."""

    @workflow.run
    async def run(self) -> None:
        """Book the flight, the hotel and the car; undo what was booked if one is refused."""
        saga = Saga()
        try:
            for what in ("flight", "hotel", "car"):
                await saga.step(what, call(book, what), compensation=call(cancel, what))
        except Exception:
            await saga.compensate()
            raise


async def main(test_server: str | None) -> None:
    """Run one trip on the time-skipping test server and print what happened."""
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=test_server)
    async with (
        env,
        Worker(
            env.client,
            task_queue="trips",
            workflows=[Trip],
            activities=[book, cancel],
            workflow_runner=UnsandboxedWorkflowRunner(),  # the workflow lives in __main__
        ),
    ):
        # The trip fails, as it should: the car was refused.
        with contextlib.suppress(WorkflowFailureError):
            trip = f"trip-{uuid.uuid4()}"
            await env.client.execute_workflow(Trip.run, id=trip, task_queue="trips")
    print("; ".join(log))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
    # The SDK's Rust threads can still hold Python thread states while the interpreter tears
    # down, which now and then aborts a short process after its work is done ("Fatal Python
    # error: PyGILState_Release", a known SDK issue): the trip is over, so leave without it.
    sys.stdout.flush()
    os._exit(0)
