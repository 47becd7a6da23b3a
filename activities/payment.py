"""Activities of the Payment service: charge the order total, refund the charge."""

from __future__ import annotations

from temporalio import activity

from activities.http import ServiceClient
from ordersaga.models import ChargePaymentInput, CompensationInput, StepResult
from ordersaga.steps import Compensation, Step


class PaymentActivities:
    """Payment activities, sharing one `ServiceClient`."""

    def __init__(self, client: ServiceClient) -> None:
        """Call the Payment service through `client`."""
        self._client = client

    @activity.defn(name=Step.CHARGE_PAYMENT.value)
    async def charge_payment(self, input: ChargePaymentInput) -> StepResult:
        """Charge `input.amount` to the card token.

        Returns:
            The charge's id.

        Raises:
            ApplicationError: Non-retryable `PaymentDeclined` (also for an unknown token);
                retryable `ServiceUnavailable`.
        """
        charge = await self._client.post(
            "/charges",
            {
                "order_id": input.order_id,
                "customer_id": input.customer_id,
                "amount": input.amount,
                "currency": input.currency,
                "token": input.payment.token,
            },
            input.idempotency_key,
        )
        return StepResult(id=charge["charge_id"])

    @activity.defn(name=Compensation.REFUND_PAYMENT.value)
    async def refund_payment(self, input: CompensationInput) -> None:
        """Refund the charge made under `input.effect_key` in full; a no-op if there is none."""
        await self._client.compensate("/charges/refund", input)
