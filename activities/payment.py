"""Activities of the Payment service: charge the order total, refund it."""

from __future__ import annotations

from typing import ClassVar

from temporalio import activity

from activities.http import ServiceClient
from ordersaga.models import CompensationInput, StepResult
from ports.payment import DOMAIN, Charge, ChargePaymentInput, ChargeRequest


class PaymentActivities:
    """The Payment port (`ports.payment.PaymentPort`) on the stand-in service's API."""

    service: ClassVar[str] = DOMAIN.name

    def __init__(self, client: ServiceClient) -> None:
        """Call the Payment service through `client`."""
        self._client = client

    @activity.defn
    async def charge_payment(self, input: ChargePaymentInput) -> StepResult:
        """Charge `input.amount` to the card token.

        Returns:
            The charge's id.

        Raises:
            ApplicationError: Non-retryable `PaymentDeclined` (also for an unknown token);
                retryable `ServiceUnavailable`.
        """
        request = ChargeRequest(
            order_id=input.order_id,
            customer_id=input.customer_id,
            amount=input.amount,
            currency=input.currency,
            token=input.payment.token,
        )
        answer = await self._client.post("/charges", request, input.idempotency_key)
        return StepResult(id=Charge.model_validate(answer).charge_id)

    @activity.defn
    async def refund_payment(self, input: CompensationInput) -> None:
        """Refund the charge made under `input.effect_key` in full; a no-op if there is none."""
        await self._client.compensate("/charges/refund", input)
