"""The Payment port: charge the order total to a card token; refund the charge in full."""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, Field, StringConstraints

from ordersaga.models import ActivityInput, CompensationInput, Identifier, PaymentMethod, StepResult
from ports.contract import Domain, Refusal, WireModel

PAYMENT_DECLINED = Refusal("PaymentDeclined", 402, "the card was declined")

DOMAIN = Domain("payment", refusals=(PAYMENT_DECLINED,))

#: The largest single charge, in minor units: a typo guard, far above any real order.
MAX_CHARGE = 10**12


class ChargePaymentInput(ActivityInput):
    """Charge the order total to the customer's card token."""

    idempotency_key: str
    order_id: str
    customer_id: str
    amount: int
    currency: str
    payment: PaymentMethod


class ChargeRequest(WireModel):
    """Body of `POST /charges`."""

    order_id: Identifier
    customer_id: Identifier
    amount: int = Field(gt=0, le=MAX_CHARGE, description="Minor units of `currency`.")
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    token: str = Field(min_length=1, max_length=100)


class Charge(BaseModel):
    """A charge to a card: the answer of `POST /charges`."""

    charge_id: str
    order_id: str
    customer_id: str
    amount: int
    currency: str
    status: Literal["charged", "refunded"]


class PaymentPort(Protocol):
    """What a Payment adapter does, as two activities."""

    async def charge_payment(self, input: ChargePaymentInput) -> StepResult:
        """Charge `input.amount` once per key; refuse with `PaymentDeclined`."""
        ...

    async def refund_payment(self, input: CompensationInput) -> None:
        """Refund in full the charge made under `input.effect_key`."""
        ...
