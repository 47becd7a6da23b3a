"""Consumers of saga events, each with a store of its own in the data folder.

- `monitoring`: the state of every saga, for the dashboard's figures (`figures`);
- `notifications`: the message a customer would get when an order is confirmed or cancelled.

`runner` feeds them from the event bus (`order-saga consumers`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from domain.events import SagaEvent, SagaEventType
from workflows.order_steps import CONFIRMED_EVENT

#: The events that end a saga: after one, nothing the saga did changes again.
ENDING_EVENTS = frozenset({CONFIRMED_EVENT, SagaEventType.SAGA_COMPENSATED})


class Consumer(Protocol):
    """Something that handles saga events under a name of its own on the bus.

    A consumer must tolerate redelivery: the bus delivers at least once.
    """

    @property
    def name(self) -> str:
        """The consumer's name on the bus, which keeps its position."""
        ...

    async def handle(self, event: SagaEvent) -> None:
        """Take `event` into account; raise to have it (and those after it) redelivered."""
        ...

    async def prune(self, before: datetime) -> int:
        """Forget what sagas that ended before `before` left; return how many records went."""
        ...
