"""Activities of the Order service: confirm the order, cancel the confirmation."""

from __future__ import annotations

from temporalio import activity

from activities.http import ServiceClient
from ports.contract import CompensationInput, StepResult
from ports.orders import ConfirmOrderInput, OrderRecord, OrdersPort


class OrderActivities(OrdersPort):
    """The Order port (`ports.orders.OrdersPort`) on the stand-in service's API."""

    def __init__(self, client: ServiceClient) -> None:
        """Call the Order service through `client`."""
        self._client = client

    @activity.defn
    async def confirm_order(self, input: ConfirmOrderInput) -> StepResult:
        """Record the order as confirmed, with the ids of what the saga's steps created.

        Returns:
            The confirmation's id.

        Raises:
            ApplicationError: Non-retryable `ConfirmationRejected`; retryable
                `ServiceUnavailable`.
        """
        answer = await self._client.post("/confirmations", input.request, input.idempotency_key)
        return StepResult(id=OrderRecord.model_validate(answer).confirmation_id)

    @activity.defn
    async def cancel_order(self, input: CompensationInput) -> None:
        """Cancel the confirmation made under `input.effect_key`; a no-op if there is none."""
        await self._client.compensate("/confirmations/cancel", input)
