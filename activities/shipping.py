"""Activities of the Shipping service: schedule the order's shipment, cancel it."""

from __future__ import annotations

from typing import ClassVar

from temporalio import activity

from activities.http import ServiceClient
from ordersaga.models import CompensationInput, StepResult
from ports.contract import line_items
from ports.shipping import DOMAIN, ScheduleShipmentInput, Shipment, ShipmentRequest


class ShippingActivities:
    """The Shipping port (`ports.shipping.ShippingPort`) on the stand-in service's API."""

    service: ClassVar[str] = DOMAIN.name

    def __init__(self, client: ServiceClient) -> None:
        """Call the Shipping service through `client`."""
        self._client = client

    @activity.defn
    async def schedule_shipment(self, input: ScheduleShipmentInput) -> StepResult:
        """Schedule delivery of the order's items to its address.

        Returns:
            The shipment's id.

        Raises:
            ApplicationError: Non-retryable `ShippingUnavailable`; retryable `ServiceUnavailable`.
        """
        request = ShipmentRequest(
            order_id=input.order_id, items=line_items(input.items), address=input.address
        )
        answer = await self._client.post("/shipments", request, input.idempotency_key)
        return StepResult(id=Shipment.model_validate(answer).shipment_id)

    @activity.defn
    async def cancel_shipment(self, input: CompensationInput) -> None:
        """Cancel the shipment scheduled under `input.effect_key`; a no-op if there is none."""
        await self._client.compensate("/shipments/cancel", input)
