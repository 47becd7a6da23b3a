"""Activities of the Inventory service: reserve an order's items, release the reservation."""

from __future__ import annotations

from temporalio import activity

from activities.http import ServiceClient
from ports.contract import CompensationInput, StepResult
from ports.inventory import (
    InventoryPort,
    Reservation,
    ReserveInventoryInput,
)


class InventoryActivities(InventoryPort):
    """The Inventory port (`ports.inventory.InventoryPort`) on the stand-in service's API."""

    def __init__(self, client: ServiceClient) -> None:
        """Call the Inventory service through `client`."""
        self._client = client

    @activity.defn
    async def reserve_inventory(self, input: ReserveInventoryInput) -> StepResult:
        """Reserve all of the order's items, or none.

        Returns:
            The reservation's id.

        Raises:
            ApplicationError: Non-retryable `OutOfStock` or `UnknownSku`; retryable
                `ServiceUnavailable`.
        """
        answer = await self._client.post("/reservations", input.request, input.idempotency_key)
        return StepResult(id=Reservation.model_validate(answer).reservation_id)

    @activity.defn
    async def release_inventory(self, input: CompensationInput) -> None:
        """Release the reservation made under `input.effect_key`; a no-op if there is none."""
        await self._client.compensate("/reservations/release", input)
