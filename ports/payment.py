"""The Payment port: charge the order total to a card token; refund the charge in full."""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, Field, StringConstraints
from temporalio import activity

from domain.fields import Identifier, StrictModel
from ports.contract import CompensationInput, Refusal, ServiceContract, StepResult, WireModel

PAYMENT_DECLINED = Refusal("PaymentDeclined", 402)

CONTRACT = ServiceContract("payment", refusals=(PAYMENT_DECLINED,))

#: The largest single charge, in minor units: a typo guard, far above any real order.
MAX_CHARGE = 10**12


class ChargeRequest(WireModel):
    """Body of `POST /charges`."""

    order_id: Identifier
    customer_id: Identifier
    amount: int = Field(gt=0, le=MAX_CHARGE, description="Minor units of `currency`.")
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    token: str = Field(min_length=1, max_length=100)


class ChargePaymentInput(StrictModel):
    """Charge the order total to the customer's card token, under `idempotency_key`."""

    idempotency_key: str
    request: ChargeRequest


class Charge(BaseModel):
    """A charge to a card: the answer of `POST /charges`."""

    charge_id: str
    order_id: str
    customer_id: str
    amount: int
    currency: str
    status: Literal["charged", "refunded"]


class PaymentPort(Protocol):
    """What a Payment adapter does, as two activities.

    The saga calls them by these methods; an adapter subclasses this class and implements
    them as activities of the same names.
    """

    @activity.defn
    async def charge_payment(self, input: ChargePaymentInput) -> StepResult:
        """Charge `input.amount` once per key; refuse with `PaymentDeclined`."""
        ...

    @activity.defn
    async def refund_payment(self, input: CompensationInput) -> None:
        """Refund in full the charge made under `input.effect_key`."""
        ...
