"""Activities of the Order service: confirm the order, cancel the confirmation."""

from __future__ import annotations

from temporalio import activity

from activities.http import ServiceClient
from ordersaga.models import CompensationInput, ConfirmOrderInput, StepResult
from ordersaga.steps import Compensation, Step


class OrderActivities:
    """Order activities, sharing one `ServiceClient`."""

    def __init__(self, client: ServiceClient) -> None:
        """Call the Order service through `client`."""
        self._client = client

    @activity.defn(name=Step.CONFIRM_ORDER.value)
    async def confirm_order(self, input: ConfirmOrderInput) -> StepResult:
        """Record the order as confirmed, with the ids of what the saga's steps created.

        Returns:
            The confirmation's id.

        Raises:
            ApplicationError: Non-retryable `ConfirmationRejected`; retryable
                `ServiceUnavailable`.
        """
        confirmation = await self._client.post(
            "/confirmations",
            input.model_dump(exclude={"idempotency_key", "events"}),
            input.idempotency_key,
        )
        return StepResult(id=confirmation["confirmation_id"])

    @activity.defn(name=Compensation.CANCEL_ORDER.value)
    async def cancel_order(self, input: CompensationInput) -> None:
        """Cancel the confirmation made under `input.effect_key`; a no-op if there is none."""
        await self._client.compensate("/confirmations/cancel", input)
