"""Activities of the Payment service: charge the order total, refund it."""

from __future__ import annotations

from temporalio import activity

from activities.http import ServiceClient
from ports.contract import CompensationInput, StepResult
from ports.payment import Charge, ChargePaymentInput, PaymentPort


class PaymentActivities(PaymentPort):
    """The Payment port (`ports.payment.PaymentPort`) on the stand-in service's API."""

    def __init__(self, client: ServiceClient) -> None:
        """Call the Payment service through `client`."""
        self._client = client

    @activity.defn
    async def charge_payment(self, input: ChargePaymentInput) -> StepResult:
        """Charge the amount to the card token.

        Returns:
            The charge's id.

        Raises:
            ApplicationError: Non-retryable `PaymentDeclined` (also for an unknown token);
                retryable `ServiceUnavailable`.
        """
        answer = await self._client.post("/charges", input.request, input.idempotency_key)
        return StepResult(id=Charge.model_validate(answer).charge_id)

    @activity.defn
    async def refund_payment(self, input: CompensationInput) -> None:
        """Refund the charge made under `input.effect_key` in full; a no-op if there is none."""
        await self._client.compensate("/charges/refund", input)
