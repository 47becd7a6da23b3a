"""The Order API as `order-saga api` runs it, on the session's dev server and saga worker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from ops.stack import api_process
from ordersaga.api.auth import Tokens


@dataclass(frozen=True)
class Api:
    """A running Order API and what it takes to call it.

    Attributes:
        url: Where it answers.
        tokens: The shop's and the operators' tokens.
        log: Its output.
    """

    url: str
    tokens: Tokens
    log: Path

    def client(self, token: str | None) -> httpx.AsyncClient:
        """An HTTP client of the API presenting `token` (none if None)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


@asynccontextmanager
async def running_api(address: str, task_queue: str, folder: Path) -> AsyncIterator[Api]:
    """`order-saga api` for the sagas of `task_queue`, with tokens made for it."""
    tokens = Tokens(shop=f"shop-{uuid.uuid4().hex}", operator=f"operator-{uuid.uuid4().hex}")
    log = folder / "api.log"
    with log.open("ab") as output:
        async with api_process(address, task_queue, tokens, output) as api:
            yield Api(api.url, tokens, log)
