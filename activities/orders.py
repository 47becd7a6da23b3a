"""Activities of the Order service: confirm the order, cancel the confirmation."""

from __future__ import annotations

from typing import ClassVar

from temporalio import activity

from activities.http import ServiceClient
from ordersaga.models import ActivityInput, CompensationInput, StepResult
from ports.orders import DOMAIN, ConfirmOrderInput, ConfirmRequest, OrderRecord


class OrderActivities:
    """The Order port (`ports.orders.OrdersPort`) on the stand-in service's API."""

    service: ClassVar[str] = DOMAIN.name

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
        request = ConfirmRequest.model_validate(
            # Everything but the key and what every activity input carries (the saga's events).
            input.model_dump(exclude={"idempotency_key", *ActivityInput.model_fields})
        )
        answer = await self._client.post("/confirmations", request, input.idempotency_key)
        return StepResult(id=OrderRecord.model_validate(answer).confirmation_id)

    @activity.defn
    async def cancel_order(self, input: CompensationInput) -> None:
        """Cancel the confirmation made under `input.effect_key`; a no-op if there is none."""
        await self._client.compensate("/confirmations/cancel", input)
