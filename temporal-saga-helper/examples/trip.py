"""A trip booking: flight, hotel, car; the car is refused, so the hotel and the flight are undone.

Run it with `python examples/trip.py` where the helper is installed with its `test` extra (which
brings the time-skipping test server; without it, the SDK downloads one). It prints what was
booked and cancelled, in order.
"""

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker
from time_skipping import start_test_server

with workflow.unsafe.imports_passed_through():
    from temporal_saga import Saga

done: list[str] = []


@activity.defn
async def book(what: str) -> None:
    """Book `what`; the car is refused (non-retryable: nothing happened, nothing to undo)."""
    if what == "car":
        raise ApplicationError("no car left", non_retryable=True)
    done.append(f"booked {what}")


@activity.defn
async def cancel(what: str) -> None:
    """Cancel the booking of `what`."""
    done.append(f"cancelled {what}")


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
        except BaseException:  # a refusal, a failure, or the trip cancelled: undo what was done
            await saga.compensate()
            raise


async def main() -> None:
    """Book one trip on the time-skipping test server and print what happened."""
    env = await start_test_server()
    async with (
        env,
        Worker(env.client, task_queue="trips", workflows=[Trip], activities=[book, cancel]),
    ):
        with contextlib.suppress(WorkflowFailureError):  # it fails, as it should: no car
            await env.client.execute_workflow(
                Trip.run, id=f"trip-{uuid.uuid4()}", task_queue="trips"
            )
    print("; ".join(done))


if __name__ == "__main__":
    asyncio.run(main())
