"""Publishing saga events: every activity publishes the events its input carries.

The workflow makes the events and hands each activity all those not yet published; an
interceptor publishes them before the activity itself runs. A step's events thus cost no extra
activity, and only a saga's last events (its outcome) need one: `publish_events`.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from ordersaga.eventbus import EventBus
from ordersaga.models import ActivityInput, PublishEventsInput


class EventPublishingInterceptor(Interceptor):
    """Publishes an activity input's `events` on the bus before the activity runs.

    If publishing fails the activity fails before doing anything, and its retry publishes again:
    events go out at least once, in order, and the bus drops copies by event id.
    """

    def __init__(self, bus: EventBus) -> None:
        """Publish on `bus`."""
        self._bus = bus

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap every activity of the worker."""
        return _PublishFirst(next, self._bus)


class _PublishFirst(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, bus: EventBus) -> None:
        super().__init__(next)
        self._bus = bus

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        for arg in input.args:
            if isinstance(arg, ActivityInput) and arg.events:
                await self._bus.publish(arg.events)
        return await super().execute_activity(input)


@activity.defn(name="publish_events")
async def publish_events(input: PublishEventsInput) -> None:
    """Publish a saga's last events.

    There is nothing left to do here: like every activity's, this input's events were
    published by `EventPublishingInterceptor` before the activity ran.
    """
