"""Saga events: what a saga announces as it goes, for monitoring and customer notifications.

Events are made by the workflow (deterministically: their ids, sequence numbers and timestamps
come from the workflow) and published by the activities that carry them, at least once and in
order per order. A consumer that sees an `event_id` twice ignores the second copy.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class SagaEventType(StrEnum):
    """The events of a saga's life; each step adds its own (`workflows/order_steps.py`)."""

    ORDER_SAGA_STARTED = "OrderSagaStarted"
    SAGA_FAILED = "SagaFailed"
    COMPENSATION_NEEDS_ATTENTION = "CompensationNeedsAttention"
    SAGA_COMPENSATED = "SagaCompensated"


class SagaEvent(BaseModel):
    """One saga event.

    Attributes:
        event_id: `<workflow id>:<sequence>`: the same event always has the same id, so a
            redelivered copy is recognised.
        order_id: The order the saga places.
        sequence: 1, 2, 3... within the order, in the order the saga made them.
        type: What happened: a `SagaEventType`, or a step's event (`PaymentCharged`, ...).
        occurred_at: When, by the workflow's clock.
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
