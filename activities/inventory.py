"""Activities of the Inventory service: reserve an order's items, release the reservation."""

from __future__ import annotations

from temporalio import activity

from activities.http import ServiceClient
from ordersaga.models import CompensationInput, ReserveInventoryInput, StepResult
from ordersaga.steps import Compensation, Step


class InventoryActivities:
    """Inventory activities, sharing one `ServiceClient`."""

    def __init__(self, client: ServiceClient) -> None:
        """Call the Inventory service through `client`."""
        self._client = client

    @activity.defn(name=Step.RESERVE_INVENTORY.value)
    async def reserve_inventory(self, input: ReserveInventoryInput) -> StepResult:
        """Reserve all of the order's items, or none.

        Returns:
            The reservation's id.

        Raises:
            ApplicationError: Non-retryable `OutOfStock` or `UnknownSku`; retryable
                `ServiceUnavailable`.
        """
        reservation = await self._client.post(
            "/reservations",
            {
                "order_id": input.order_id,
                "items": [item.model_dump(include={"sku", "quantity"}) for item in input.items],
            },
            input.idempotency_key,
        )
        return StepResult(id=reservation["reservation_id"])

    @activity.defn(name=Compensation.RELEASE_INVENTORY.value)
    async def release_inventory(self, input: CompensationInput) -> None:
        """Release the reservation made under `input.effect_key`; a no-op if there is none."""
        await self._client.compensate("/reservations/release", input)
