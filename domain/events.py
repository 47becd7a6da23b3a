"""Saga events: what a saga announces as it goes, for monitoring and customer notifications.

Events are made by the workflow (deterministically: their ids, sequence numbers and timestamps
come from the workflow) and ride to the worker in a header of the activities the saga calls
(`CarriedEvents`), never in their inputs: an activity's input is its service's contract alone.
The worker's interceptor publishes them, at least once and in order per order. A consumer that
sees an `event_id` twice ignores the second copy.

A step's own event (`InventoryReserved`, ...) names what the step created, which only the step's
activity knows: the workflow makes it as the step starts, as a `StepAnnouncement`, and the
interceptor publishes it once the step's activity has succeeded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class SagaEventType(StrEnum):
    """The events of a saga's life; each step adds its own (`workflows/order_steps.py`)."""

    ORDER_SAGA_STARTED = "OrderSagaStarted"
    SAGA_FAILED = "SagaFailed"
    SAGA_INTERRUPTED = "SagaInterrupted"
    """Withdrawn by the customer or cancelled: no step failed."""
    COMPENSATION_NEEDS_ATTENTION = "CompensationNeedsAttention"
    SAGA_COMPENSATED = "SagaCompensated"


class SagaEvent(BaseModel):
    """One saga event.

    Attributes:
        event_id: `<workflow id>:<sequence>`: the same event always has the same id, so a
            redelivered copy is recognised.
        order_id: The order the saga places.
        sequence: 1, 2, 3... within the order, in the order the saga made them. A step that
            fails other than by a refusal leaves its own event's number unused: the event was
            made as the step started, and may have gone out (the step may have succeeded before
            its activity failed).
        type: What happened: a `SagaEventType`, or a step's event (`PaymentCharged`, ...).
        occurred_at: When, by the workflow's clock (a step's own event: by its activity's, as
            the step succeeded).
        data: Details by type: ids of what a step created, amounts in minor units, the failed
            step and reason. Never a card number or an address.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    order_id: str
    sequence: int
    type: str
    occurred_at: datetime
    data: dict[str, str | int | bool] = {}


class StepAnnouncement(BaseModel):
    """A step's own event, made by the workflow as the step starts, for its activity to publish.

    Attributes:
        event: The event, lacking only the id of what the step created.
        created_as: The key of `event.data` that takes that id.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: SagaEvent
    created_as: str

    def completed(self, created_id: str, at: datetime) -> SagaEvent:
        """The event to publish once the step has created `created_id`, at time `at`."""
        data = {self.created_as: created_id, **self.event.data}
        return self.event.model_copy(update={"data": data, "occurred_at": at})


class CarriedEvents(BaseModel):
    """The saga's events that ride in the header of one activity call.

    Attributes:
        events: Every event not yet published, published before the activity runs.
        announces: The step's own event, published once the step's activity has succeeded.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    events: list[SagaEvent] = []
    announces: StepAnnouncement | None = None


#: The activity header the events ride in.
EVENTS_HEADER = "saga-events"

#: The events that ride with the activity the workflow is calling, in the calling task; the
#: worker's workflow interceptor puts them in the call's header as it schedules the call.
_carried: ContextVar[CarriedEvents | None] = ContextVar("carried_saga_events", default=None)


@contextmanager
def carrying(carried: CarriedEvents) -> Iterator[None]:
    """Within the block, activities the calling task schedules carry `carried`."""
    token = _carried.set(carried)
    try:
        yield
    finally:
        _carried.reset(token)


def carried_now() -> CarriedEvents | None:
    """What the activity being scheduled carries, if anything."""
    return _carried.get()
