"""The events of one order saga: numbered as the saga makes them, carried by its activities.

Each activity call carries, in its header, every event not yet published until one call
succeeds: a redelivered event is harmless (same id), a lost one is not. A step's call also
carries the step's own event, which its worker publishes once the step has succeeded.

Deterministic like the workflow it serves: ids, sequence numbers and times come from the
workflow.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.events import (
        CarriedEvents,
        SagaEvent,
        SagaEventType,
        StepAnnouncement,
        carrying,
        publish_events,
    )
    from domain.order import OrderRequest
    from domain.policy import ActivityPolicy
    from workflows.order_steps import ORDER_STEPS, OrderStep

from temporal_saga import is_refusal

from workflows.activity_calls import activity_options

#: Publishing the saga's last events retries until the bus takes them, like a compensation.
PUBLISH_POLICY = ActivityPolicy(first_retry_s=1.0, max_attempts=1000)


class SagaEvents:
    """The events one order saga has made, and those not yet published."""

    def __init__(self, order_id: str) -> None:
        """Make the events of the saga of order `order_id`."""
        self._order_id = order_id
        self._request: OrderRequest  # from `started`, which comes before any step
        self._sequence = 0
        self._unpublished: list[SagaEvent] = []

    def started(self, request: OrderRequest) -> None:
        """The saga accepted `request`: its first event."""
        self._request = request
        self.emit(
            SagaEventType.ORDER_SAGA_STARTED,
            customer_id=request.customer_id,
            total=request.total,
            currency=request.currency,
        )

    def emit(self, event_type: str, **data: str | int | bool) -> None:
        """Make the saga's next event; the next activity call carries it."""
        self._unpublished.append(self._event(event_type, **data))

    @contextmanager
    def riding(self, step: OrderStep[Any] | None = None) -> Iterator[None]:
        """Within the block, the activity called carries the unpublished events.

        Args:
            step: The step the activity does, if it is one: it announces the step's event.
        """
        events = list(self._unpublished)
        announced = self._event(step.event, **self._step_details(step)) if step else None
        announces = StepAnnouncement(event=announced, created_as=step.yields) if step else None
        try:
            with carrying(CarriedEvents(events=events, announces=announces)):
                yield
        except BaseException as err:
            # A refused step did nothing and announced nothing: its event's number is reused.
            # Any other failure may follow a success whose event went out: the number stays used.
            if announced and is_refusal(err) and self._sequence == announced.sequence:
                self._sequence -= 1
            raise
        del self._unpublished[: len(events)]

    async def publish_unpublished(self) -> None:
        """Publish the events no step is left to carry (at most one activity per saga end).

        By a local activity: no round trip through the server's queue.
        """
        if not self._unpublished:
            return
        with self.riding():
            await workflow.execute_local_activity(
                publish_events, self._order_id, **activity_options(PUBLISH_POLICY)
            )

    def _step_details(self, step: OrderStep[Any]) -> dict[str, str | int]:
        """What a step's event says besides the id of what the step created."""
        details: dict[str, str | int] = {}
        if step.charges_customer:
            details |= {"amount": self._request.total, "currency": self._request.currency}
        if step is ORDER_STEPS[-1]:  # the confirmation names what the order came to
            details |= {"total": self._request.total, "currency": self._request.currency}
        return details

    def _event(self, event_type: str, **data: str | int | bool) -> SagaEvent:
        """The saga's next event, numbered."""
        self._sequence += 1
        return SagaEvent(
            event_id=f"{workflow.info().workflow_id}:{self._sequence}",
            order_id=self._order_id,
            sequence=self._sequence,
            type=event_type,
            occurred_at=workflow.now(),
            data=data,
        )
