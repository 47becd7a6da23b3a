"""Reads of the Order API through a run: does it answer, and how soon, whatever breaks?"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from ops.workload import api_client

#: A read is made this often.
READ_EVERY_S = 1.0


@dataclass
class ApiReads:
    """How the Order API answered `GET /orders/{id}` through a run.

    Attributes:
        statuses: Reads by the HTTP status answered.
        unanswered: Reads that got no answer: the connection failed, or none came within the
            client's timeout (`ops.workload.api_client`'s).
        slowest_s: The longest a read took to be answered.
    """

    statuses: Counter[int] = field(default_factory=Counter)
    unanswered: int = 0
    slowest_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Every read was answered: 200, or 503 while Temporal was out of reach."""
        return self.unanswered == 0 and set(self.statuses) <= {200, 503}

    def __str__(self) -> str:
        answered = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))
        return (
            f"{sum(self.statuses.values()) + self.unanswered} reads: {answered or 'none'}; "
            f"unanswered: {self.unanswered}; slowest {self.slowest_s:.1f} s"
        )


async def read_api(url: str, token: str, latest: Callable[[], str | None], reads: ApiReads) -> None:
    """Read the saga of order `latest()` every `READ_EVERY_S` into `reads`, until cancelled."""
    async with api_client(url, token) as http:
        while True:
            order_id = latest()
            if order_id is not None:
                asked = time.monotonic()
                try:
                    answer = await http.get(f"/orders/{order_id}")
                    reads.statuses[answer.status_code] += 1
                except httpx.TransportError:
                    reads.unanswered += 1
                reads.slowest_s = max(reads.slowest_s, time.monotonic() - asked)
            await asyncio.sleep(READ_EVERY_S)  # the pace of the reads, not a wait for anything
