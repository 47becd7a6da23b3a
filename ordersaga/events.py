"""Saga events: what a saga announces as it goes, for monitoring and customer notifications.

Events are made by the workflow (deterministically: their ids, sequence numbers and timestamps
come from the workflow) and published by the activities that carry them, at least once and in
order per order. A consumer that sees an `event_id` twice ignores the second copy.

A step's own event (`InventoryReserved`, ...) names what the step created, which only the step's
activity knows: the workflow makes it as the step starts, as a `StepAnnouncement`, and the
activity publishes it once it has succeeded.
"""

from __future__ import annotations

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
