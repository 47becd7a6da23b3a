"""Activities of the Shipping service: schedule the order's shipment, cancel it."""

from __future__ import annotations

from temporalio import activity

from activities.http import ServiceClient
from ordersaga.models import CompensationInput, ScheduleShipmentInput, StepResult
from ordersaga.steps import Compensation, Step


class ShippingActivities:
    """Shipping activities, sharing one `ServiceClient`."""

    def __init__(self, client: ServiceClient) -> None:
        """Call the Shipping service through `client`."""
        self._client = client

    @activity.defn(name=Step.SCHEDULE_SHIPMENT.value)
    async def schedule_shipment(self, input: ScheduleShipmentInput) -> StepResult:
        """Schedule delivery of the order's items to its address.

        Returns:
            The shipment's id.

        Raises:
            ApplicationError: Non-retryable `ShippingUnavailable`; retryable `ServiceUnavailable`.
        """
        shipment = await self._client.post(
            "/shipments",
            {
                "order_id": input.order_id,
                "items": [item.model_dump(include={"sku", "quantity"}) for item in input.items],
                "address": input.address.model_dump(),
            },
            input.idempotency_key,
        )
        return StepResult(id=shipment["shipment_id"])

    @activity.defn(name=Compensation.CANCEL_SHIPMENT.value)
    async def cancel_shipment(self, input: CompensationInput) -> None:
        """Cancel the shipment scheduled under `input.effect_key`; a no-op if there is none."""
        await self._client.compensate("/shipments/cancel", input)
