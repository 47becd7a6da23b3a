"""Driving a load: place N things closed-loop (at a concurrency) or open-loop (at a rate), timed.

What is placed is given as a function `place(i) -> outcome` that starts item `i` and returns once
it has ended; the driver only measures. Latency is the time `place` took: from the start request
to the result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from temporalio.service import RPCError, RPCStatusCode

T = TypeVar("T")

#: Places item `i`, waits for it to end and returns its outcome (such as "confirmed").
Place = Callable[[int], Awaitable[str]]

#: What gRPC answers while the Temporal server is restarting or overloaded: worth retrying.
_TRANSIENT = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.UNKNOWN,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.INTERNAL,
    }
)


@dataclass(frozen=True)
class Sample:
    """One item of a load run.

    Attributes:
        index: The item's number.
        started_s: When it was placed, seconds since the run began.
        latency_s: From the start request to the result.
        outcome: What `place` returned.
    """

    index: int
    started_s: float
    latency_s: float
    outcome: str

    @property
    def ended_s(self) -> float:
        """When it ended, seconds since the run began."""
        return self.started_s + self.latency_s


async def run_load(
    place: Place,
    count: int,
    *,
    concurrency: int | None = None,
    rate: float | None = None,
    on_done: Callable[[Sample], None] | None = None,
) -> list[Sample]:
    """Place items 0..count-1 and time each.

    Args:
        place: Places one item and waits for its end.
        count: How many items.
        concurrency: Closed loop: this many in flight, the next placed as one ends.
        rate: Open loop: items placed at this many per second whatever the system does
            (exactly one of `concurrency` and `rate`).
        on_done: Called with each sample as it ends (a progress bar).

    Returns:
        The samples, in the order the items ended.
    """
    if (concurrency is None) == (rate is None):
        raise ValueError("give exactly one of concurrency and rate")
    samples: list[Sample] = []
    began = time.monotonic()

    async def one(index: int) -> None:
        started = time.monotonic()
        outcome = await place(index)
        sample = Sample(index, started - began, time.monotonic() - started, outcome)
        samples.append(sample)
        if on_done:
            on_done(sample)

    if concurrency is not None:
        queue = iter(range(count))

        async def loop() -> None:
            for index in queue:  # the iterator is shared: each index is taken once
                await one(index)

        await asyncio.gather(*(loop() for _ in range(min(concurrency, count))))
    else:
        assert rate is not None
        async with asyncio.TaskGroup() as group:
            for index in range(count):
                # Arrivals on a fixed schedule: a slow system does not slow the arrivals down.
                await asyncio.sleep(max(0.0, began + index / rate - time.monotonic()))
                group.create_task(one(index))
    return samples


async def retry_transient(call: Callable[[], Awaitable[T]], within_s: float = 120.0) -> T:
    """`call()`, again with backoff while the Temporal server is unreachable, for `within_s`.

    A restart of the dev server makes every call fail for a few seconds; the client's own
    retries may give up before it is back.
    """
    deadline = time.monotonic() + within_s
    delay = 0.1
    while True:
        try:
            return await call()
        except RPCError as err:
            if err.status not in _TRANSIENT or time.monotonic() > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)
