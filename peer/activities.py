"""The hand-written saga's activities: one POST to a service each, under an idempotency key.

A 4xx answer with a `code` is the service's final "no", raised as a non-retryable error of that
type; anything else that is not a 2xx is retried by the activity's retry policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
from temporalio import activity
from temporalio.exceptions import ApplicationError

from peer.shared import Call


class ServiceCalls:
    """The services' calls, through one HTTP client."""

    def __init__(self, http: aiohttp.ClientSession, services_url: str) -> None:
        """Call the services under `services_url` through `http`."""
        self._http = http
        self._base = services_url.rstrip("/")

    def activities(self) -> list[Callable[..., Any]]:
        """Every activity, for the worker to register."""
        return [
            self.reserve_inventory,
            self.release_inventory,
            self.charge_payment,
            self.refund_payment,
            self.schedule_shipment,
            self.cancel_shipment,
            self.confirm_order,
            self.cancel_order,
        ]

    @activity.defn
    async def reserve_inventory(self, call: Call) -> str:
        """Reserve the items; the reservation's id."""
        return str((await self._post("/inventory/reservations", call))["reservation_id"])

    @activity.defn
    async def release_inventory(self, call: Call) -> None:
        """Release the reservation made under the call's `effect_key`."""
        await self._post("/inventory/reservations/release", call)

    @activity.defn
    async def charge_payment(self, call: Call) -> str:
        """Charge the card token; the charge's id."""
        return str((await self._post("/payment/charges", call))["charge_id"])

    @activity.defn
    async def refund_payment(self, call: Call) -> None:
        """Refund the charge made under the call's `effect_key`."""
        await self._post("/payment/charges/refund", call)

    @activity.defn
    async def schedule_shipment(self, call: Call) -> str:
        """Schedule the delivery; the shipment's id."""
        return str((await self._post("/shipping/shipments", call))["shipment_id"])

    @activity.defn
    async def cancel_shipment(self, call: Call) -> None:
        """Cancel the shipment scheduled under the call's `effect_key`."""
        await self._post("/shipping/shipments/cancel", call)

    @activity.defn
    async def confirm_order(self, call: Call) -> str:
        """Record the order as confirmed; the confirmation's id."""
        return str((await self._post("/orders/confirmations", call))["confirmation_id"])

    @activity.defn
    async def cancel_order(self, call: Call) -> None:
        """Cancel the confirmation made under the call's `effect_key`."""
        await self._post("/orders/confirmations/cancel", call)

    async def _post(self, path: str, call: Call) -> dict[str, Any]:
        headers = {"Idempotency-Key": call.key}
        try:
            async with self._http.post(self._base + path, json=call.body, headers=headers) as got:
                answer: dict[str, Any] = await got.json(content_type=None)
                status = got.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise ApplicationError(f"POST {path} failed: {type(err).__name__}") from err
        if 200 <= status < 300:
            return answer
        code = answer.get("code") if isinstance(answer, dict) else None
        if 400 <= status < 500 and status not in (408, 429) and isinstance(code, str):
            raise ApplicationError(str(answer.get("message", code)), type=code, non_retryable=True)
        raise ApplicationError(f"POST {path} answered {status}")
