"""Stand-in activities for unit tests of the workflow logic: scripted outcomes, recorded calls."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.events import SagaEvent
from infra.eventbus.publishing import EventPublishingInterceptor
from ports.contract import StepResult
from tests.support.orders import COMPENSATIONS, STEPS
from workflows.order_saga import publish_events

ALL_ACTIVITIES = [*STEPS, *COMPENSATIONS]


def refusal(refusal_type: str) -> ApplicationError:
    """A business refusal, as the real activities raise it."""
    return ApplicationError(f"refused: {refusal_type}", type=refusal_type, non_retryable=True)


def fault() -> ApplicationError:
    """A transient fault, as the real activities raise it for a 5xx."""
    return ApplicationError("service answered 503", type="ServiceUnavailable")


class StandIns:
    """The eight saga activities, each failing as scripted, then succeeding.

    Attributes:
        calls: Activity names in the order their attempts ran.
        attempt_times: Per activity, when each attempt started, by `clock` if given.
        hold: Activities that wait, once started, until their event is set.
        started: Set when a held activity has started.
        events: The saga events the worker's interceptor published (carried ones first, a
            step's announced one once it succeeded), each once, in the order first seen;
            `publish_events` carries events too but is not counted in `calls`.
    """

    def __init__(
        self,
        failures: dict[str, list[BaseException]] | None = None,
        clock: Callable[[], Awaitable[datetime]] | None = None,
    ) -> None:
        self.clock = clock
        self.failures = {name: list(errors) for name, errors in (failures or {}).items()}
        self.calls: list[str] = []
        self.attempt_times: dict[str, list[datetime]] = defaultdict(list)
        self.hold: dict[str, asyncio.Event] = {}
        self.started: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.events: list[SagaEvent] = []

    def activities(self) -> list[Callable[..., Any]]:
        """One stand-in per activity name the workflow calls."""
        return [self._stand_in(name) for name in ALL_ACTIVITIES] + [publish_events]

    def interceptors(self) -> list[EventPublishingInterceptor]:
        """The worker's event interceptor, publishing to these stand-ins' `events`."""
        return [EventPublishingInterceptor(self)]

    async def publish(self, events: Sequence[SagaEvent]) -> None:
        """Record `events`, each once, as the bus keeps them."""
        seen = {event.event_id for event in self.events}
        self.events.extend(event for event in events if event.event_id not in seen)

    def _stand_in(self, name: str) -> Callable[..., Any]:
        @activity.defn(name=name)
        async def stand_in(arg: dict[str, Any]) -> StepResult | None:
            self.calls.append(name)
            if self.clock:
                self.attempt_times[name].append(await self.clock())
            self.started[name].set()
            if name in self.hold:
                await self.hold[name].wait()
            if self.failures.get(name):
                raise self.failures[name].pop(0)
            # Steps create something; compensations, like the real ones, return nothing.
            if name not in STEPS:
                return None
            return StepResult(id=f"{name}-id")

        return stand_in
