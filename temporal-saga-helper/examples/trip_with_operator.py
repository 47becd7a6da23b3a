"""A trip the customer cancels half-way, whose hotel cannot be cancelled until an operator answers.

The flight and the hotel are booked; while the car is being booked, the customer cancels the
trip. The saga undoes what it did, in reverse: the car (its booking may have gone through), then
the hotel, whose line is busy: after three tries the saga asks an operator, who answers with an
update (the hotel was cancelled by phone), and the flight goes last. Run it with
`python examples/trip_with_operator.py` where the helper is installed with its `test` extra.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker
from time_skipping import start_test_server

with workflow.unsafe.imports_passed_through():
    from temporal_saga import CompensationFailure, Decision, Saga

#: Tries of each booking and cancellation before the saga is told it failed.
TRIES = 3

done: list[str] = []
car_booking_began = asyncio.Event()
hotel_gave_up = asyncio.Event()


@activity.defn
async def book(what: str) -> None:
    """Book `what`; the car takes until the trip is cancelled."""
    if what == "car":
        car_booking_began.set()
        while True:  # a slow car company: heartbeats let the cancellation reach this activity
            activity.heartbeat()
            await asyncio.sleep(0.1)
    done.append(f"booked {what}")


@activity.defn
async def cancel(what: str) -> None:
    """Cancel the booking of `what`; the hotel's line is always busy."""
    if what == "hotel":
        if activity.info().attempt == TRIES:
            hotel_gave_up.set()
        raise ApplicationError("the hotel's line is busy")
    done.append(f"cancelled {what}")


def call(action: Callable[[str], Awaitable[None]], what: str) -> Callable[[], Awaitable[None]]:
    """`action(what)` as an activity: `TRIES` tries, a second apart, then the saga is told."""
    return lambda: workflow.execute_activity(
        action,
        what,
        start_to_close_timeout=timedelta(seconds=30),
        heartbeat_timeout=timedelta(seconds=2),
        retry_policy=RetryPolicy(maximum_attempts=TRIES, initial_interval=timedelta(seconds=1)),
    )


@workflow.defn
class Trip:
    """Books a trip: every booking, or none, with an operator for what cannot be undone alone."""

    def __init__(self) -> None:
        self._asking: CompensationFailure | None = None
        self._answer: Decision | None = None

    @workflow.run
    async def run(self) -> None:
        """Book the flight, the hotel and the car; undo what was booked if the trip ends early."""
        saga = Saga(on_failure=self._ask_operator)
        try:
            for what in ("flight", "hotel", "car"):
                await saga.step(what, call(book, what), compensation=call(cancel, what))
        except BaseException:  # the customer's cancellation arrives as a CancelledError
            await saga.compensate()
            raise

    @workflow.update
    async def answer(self, decision: str) -> str:
        """An operator's answer (`retry` or `settled`) to the undo that keeps failing.

        Given before the saga asks, it waits for the question. Returns the step it answered.
        """
        await workflow.wait_condition(lambda: self._asking is not None)
        assert self._asking is not None
        step = self._asking.step
        self._answer = Decision(decision)
        return step

    @answer.validator
    def _known(self, decision: str) -> None:
        Decision(decision)  # raises ValueError, which refuses the update, for another word

    async def _ask_operator(self, failure: CompensationFailure) -> Decision:
        self._asking, self._answer = failure, None
        await workflow.wait_condition(lambda: self._answer is not None)
        assert self._answer is not None
        answer, self._asking = self._answer, None
        return answer


async def main() -> None:
    """Book, cancel and settle one trip on the time-skipping test server; print what happened."""
    env = await start_test_server()
    async with (
        env,
        Worker(env.client, task_queue="trips", workflows=[Trip], activities=[book, cancel]),
    ):
        trip = await env.client.start_workflow(
            Trip.run, id=f"trip-{uuid.uuid4()}", task_queue="trips"
        )
        await car_booking_began.wait()
        done.append("the customer cancels the trip")
        await trip.cancel()
        await hotel_gave_up.wait()
        done.append("an operator settles the hotel: cancelled by phone")
        assert await trip.execute_update(Trip.answer, Decision.SETTLED.value) == "hotel"
        try:
            await trip.result()
        except WorkflowFailureError as ended:
            done.append(f"trip ended: {type(ended.cause).__name__}")
    print("\n".join(done))


if __name__ == "__main__":
    asyncio.run(main())
