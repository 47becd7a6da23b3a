"""Publishing saga events: every activity publishes the events its input carries.

The workflow makes the events and hands each activity all those not yet published; an
interceptor publishes them before the activity itself runs, and a step's own event (which names
what the step created) once the step's activity has succeeded. Events thus cost no extra
activity, and only the last events of a saga that did not confirm (its outcome) need one:
`publish_events`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from ordersaga.eventbus import EventBus
from ordersaga.models import ActivityInput, PublishEventsInput, StepResult


class EventPublishingInterceptor(Interceptor):
    """Publishes an activity input's `events` before the activity runs, `announces` after.

    If publishing fails the activity fails (before doing anything, or after a step whose retry
    finds it done by its idempotency key), and its retry publishes again: events go out at least
    once, in order, and the bus drops copies by event id.
    """

    def __init__(self, bus: EventBus) -> None:
        """Publish on `bus`."""
        self._bus = bus

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap every activity of the worker."""
        return _PublishAround(next, self._bus)


class _PublishAround(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, bus: EventBus) -> None:
        super().__init__(next)
        self._bus = bus

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        carried = [arg for arg in input.args if isinstance(arg, ActivityInput)]
        for arg in carried:
            if arg.events:
                await self._bus.publish(arg.events)
        result = await super().execute_activity(input)
        for arg in carried:
            if arg.announces:
                if not isinstance(result, StepResult):
                    name = activity.info().activity_type
                    raise TypeError(f"{name} announces a step's event: it must return a StepResult")
                await self._bus.publish([arg.announces.completed(result.id, datetime.now(UTC))])
        return result


@activity.defn(name="publish_events")
async def publish_events(input: PublishEventsInput) -> None:
    """Publish a saga's last events.

    There is nothing left to do here: like every activity's, this input's events were
    published by `EventPublishingInterceptor` before the activity ran.
    """
