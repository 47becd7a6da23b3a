"""Activities of the Shipping service: schedule the order's shipment, cancel it."""

from __future__ import annotations

from temporalio import activity

from activities.http import ServiceClient
from ports.contract import CompensationInput, StepResult
from ports.shipping import ScheduleShipmentInput, Shipment, ShippingPort


class ShippingActivities(ShippingPort):
    """The Shipping port (`ports.shipping.ShippingPort`) on the stand-in service's API."""

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
        answer = await self._client.post("/shipments", input.request, input.idempotency_key)
        return StepResult(id=Shipment.model_validate(answer).shipment_id)

    @activity.defn
    async def cancel_shipment(self, input: CompensationInput) -> None:
        """Cancel the shipment scheduled under `input.effect_key`; a no-op if there is none."""
        await self._client.compensate("/shipments/cancel", input)
