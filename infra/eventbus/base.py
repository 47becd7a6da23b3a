"""What every event bus does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol

from domain.events import SagaEvent
from infra.exits import StartFailure

#: Handles one event; an exception leaves the event (and those after it) to be redelivered.
EventHandler = Callable[[SagaEvent], Awaitable[None]]


class EventBusUnreachable(StartFailure):
    """The event bus cannot be reached; the message says where it was looked for."""


class EventBus(Protocol):
    """A durable log of saga events.

    Publishing is idempotent by `event_id` and keeps the order of `events`; every consumer sees
    every event at least once, in publishing order, and resumes after a restart where it left
    off.
    """

    async def publish(self, events: Sequence[SagaEvent]) -> None:
        """Append `events`, in order, skipping any already published (same `event_id`)."""
        ...

    async def consume(self, consumer: str, handler: EventHandler, *, stop_when_idle: bool) -> int:
        """Feed `consumer` the events after its saved position, saving it after each event.

        Args:
            consumer: The consumer's name; each name has its own position.
            handler: Called once per event, in order.
            stop_when_idle: Return once caught up, instead of waiting for more events.

        Returns:
            How many events were handled.
        """
        ...

    async def prune(self, before: datetime) -> int:
        """Delete the events published before `before` that every consumer has handled.

        Returns:
            How many events were deleted.
        """
        ...

    async def check(self) -> None:
        """Return if the bus can be used now; a process checks it once, as it starts.

        Raises:
            EventBusUnreachable: It cannot, in one line saying what to do.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
