"""Publishing saga events: they ride in a header of the activities the saga calls.

The workflow makes the events and hands each activity call all those not yet published
(`domain.events.carrying`); this worker interceptor puts them in the call's header as the
workflow schedules it, then, on the activity's side, publishes them before the activity itself
runs, and a step's own event (which names what the step created) once the step's activity has
succeeded. Events thus cost no activity of their own, and only the last events of a saga that
did not confirm (its outcome) need one: `publish_events`. The activities, and the services
behind them, never see them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from temporalio import activity, workflow
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from domain.events import EVENTS_HEADER, CarriedEvents, SagaEvent, carried_now
from ports.contract import StepResult

Scheduled = TypeVar("Scheduled", StartActivityInput, StartLocalActivityInput)


class Publisher(Protocol):
    """Where events go: an `infra.eventbus.EventBus`, or a test's recorder."""

    async def publish(self, events: Sequence[SagaEvent]) -> None:
        """Append `events`, in order, skipping any already published."""
        ...


class EventPublishingInterceptor(Interceptor):
    """Carries a saga's events in its activities' headers and publishes them around each call.

    If publishing fails the activity fails (before doing anything, or after a step whose retry
    finds it done by its idempotency key), and its retry publishes again: events go out at least
    once, in order, and the bus drops copies by event id.
    """

    def __init__(self, bus: Publisher) -> None:
        """Publish on `bus`."""
        self._bus = bus

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Publish what every activity of the worker carries."""
        return _PublishAround(next, self._bus)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        """Put the events in the header of every activity a workflow schedules."""
        return _CarryEvents


class _CarryEvents(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_AttachEvents(outbound))


class _AttachEvents(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        return super().start_activity(_with_events(input))

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        return super().start_local_activity(_with_events(input))


def _with_events(input: Scheduled) -> Scheduled:
    carried = carried_now()
    if carried is None:
        return input
    header = workflow.payload_converter().to_payload(carried)
    return dataclasses.replace(input, headers={**input.headers, EVENTS_HEADER: header})


class _PublishAround(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, bus: Publisher) -> None:
        super().__init__(next)
        self._bus = bus

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        header = input.headers.get(EVENTS_HEADER)
        if header is None:
            return await super().execute_activity(input)
        carried = activity.payload_converter().from_payload(header, CarriedEvents)
        if carried.events:
            await self._bus.publish(carried.events)
        result = await super().execute_activity(input)
        if announced := carried.announces:
            if not isinstance(result, StepResult):
                name = activity.info().activity_type
                raise TypeError(f"{name} announces a step's event: it must return a StepResult")
            await self._bus.publish([announced.completed(result.id, datetime.now(UTC))])
        return result
