"""The "Replacing the Payment service" recipe: the port's contract, run against our adapter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from activities.http import ServiceClient
from activities.payment import PaymentActivities
from ports.payment import PaymentPort
from tests.support.payment_contract import CONTRACT, Charges


@pytest.mark.parametrize("rule", CONTRACT, ids=[rule.__name__ for rule in CONTRACT])
async def test_the_stand_in_adapter_keeps_the_payment_contract(
    rule: Callable[[PaymentPort, Charges], Awaitable[None]],
    http: aiohttp.ClientSession,
    base_url: str,
) -> None:
    adapter = PaymentActivities(ServiceClient(http, f"{base_url}/payment"))

    async def charges(order_id: str) -> int:
        url = f"{base_url}/payment/charges"
        async with http.get(url, params={"order_id": order_id}, raise_for_status=True) as answer:
            live = [c for c in await answer.json() if c["status"] == "charged"]
        return len(live)

    await rule(adapter, charges)
