"""What the stand-in services hold about an order, read over their HTTP APIs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from workflows.order_steps import SERVICES


@dataclass(frozen=True)
class OrderEffects:
    """Every record the four services keep about one order."""

    reservations: list[dict[str, Any]]
    charges: list[dict[str, Any]]
    refunds: list[dict[str, Any]]
    shipments: list[dict[str, Any]]
    record: dict[str, Any] | None

    @property
    def net_charged(self) -> int:
        """Charged minus refunded, in minor units."""
        charged = sum(charge["amount"] for charge in self.charges)
        return int(charged - sum(refund["amount"] for refund in self.refunds))

    @property
    def live_reservations(self) -> list[dict[str, Any]]:
        """Reservations still holding stock."""
        return [r for r in self.reservations if r["status"] == "reserved"]

    @property
    def live_shipments(self) -> list[dict[str, Any]]:
        """Shipments not cancelled."""
        return [s for s in self.shipments if s["status"] == "scheduled"]


class Services:
    """Reads the services' state and switches their faults, for tests."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def _get(self, path: str, **params: str) -> Any:
        response = await self.http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    async def stock(self) -> dict[str, int]:
        """Units available per SKU."""
        stock: dict[str, int] = await self._get("/inventory/stock")
        return stock

    async def effects(self, order_id: str) -> OrderEffects:
        """Everything the services recorded for `order_id`."""
        record = await self.http.get(f"/orders/orders/{order_id}")
        if record.status_code != 404:
            record.raise_for_status()
        return OrderEffects(
            reservations=await self._get("/inventory/reservations", order_id=order_id),
            charges=await self._get("/payment/charges", order_id=order_id),
            refunds=await self._get("/payment/refunds", order_id=order_id),
            shipments=await self._get("/shipping/shipments", order_id=order_id),
            record=record.json() if record.status_code != 404 else None,
        )

    async def calls(self, service: str) -> int:
        """How many mutating calls `service` has had so far."""
        calls: int = (await self._get(f"/{service}/admin/calls"))["calls"]
        return calls

    async def wait_for_call(self, service: str, after: int, within_s: float = 20.0) -> None:
        """Return once `service` has had more than `after` mutating calls.

        With a latency fault on `service`, the call is then in flight: the service holds it.
        """
        async with asyncio.timeout(within_s):
            while await self.calls(service) <= after:
                await asyncio.sleep(0.02)

    async def set_faults(self, service: str, **faults: Any) -> None:
        """Make `service` misbehave, e.g. `fail_next=2, fail_after_commit=True`."""
        (await self.http.put(f"/{service}/admin/faults", json=faults)).raise_for_status()

    async def reset_faults(self) -> None:
        """Every service well-behaved again."""
        for service in SERVICES:
            await self.set_faults(service)
