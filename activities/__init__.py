"""Temporal activities: thin clients of the services the saga calls, one module per port.

A worker makes one HTTP client and registers what `build_activities` returns:

    async with create_http_client() as http:
        worker = Worker(..., activities=build_activities(http, settings.service_urls))

The activities take and return pydantic models, so the client and worker need
`temporalio.contrib.pydantic.pydantic_data_converter`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from activities.http import ServiceClient, create_http_client
from ordersaga.settings import ServiceUrls

__all__ = ["ServiceClient", "build_activities", "create_http_client"]


def build_activities(http: aiohttp.ClientSession, urls: ServiceUrls) -> list[Callable[..., Any]]:
    """Every step's activity and compensation (`workflows.order_steps`), sharing `http`.

    Args:
        http: The worker's shared client, from `create_http_client()`.
        urls: Where each service is.
    """
    from workflows.order_steps import ORDER_STEPS  # the table imports this package's modules

    providers = {
        row.provider: row.provider(ServiceClient(http, urls[row.provider.service]))
        for row in ORDER_STEPS
    }
    steps = [getattr(providers[row.provider], row.name) for row in ORDER_STEPS]
    undos = [getattr(providers[row.provider], row.undo) for row in ORDER_STEPS]
    return steps + undos
