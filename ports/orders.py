"""The Order port: record the order as confirmed, with what each step created; cancel it."""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, Field, StringConstraints

from ordersaga.models import ActivityInput, CompensationInput, Identifier, StepResult
from ports.contract import Domain, Refusal, WireModel

CONFIRMATION_REJECTED = Refusal("ConfirmationRejected", 409, "we could not accept it")

DOMAIN = Domain("orders", refusals=(CONFIRMATION_REJECTED,))

RecordId = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class ConfirmOrderInput(ActivityInput):
    """Record the order as confirmed with the Order service."""

    idempotency_key: str
    order_id: str
    customer_id: str
    amount: int
    currency: str
    reservation_id: str
    charge_id: str
    shipment_id: str


class ConfirmRequest(WireModel):
    """Body of `POST /confirmations`."""

    order_id: Identifier
    customer_id: Identifier
    amount: int = Field(gt=0, description="Minor units of `currency`.")
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    reservation_id: RecordId
    charge_id: RecordId
    shipment_id: RecordId


class OrderRecord(BaseModel):
    """An order as the Order service records it: the answer of `POST /confirmations`."""

    confirmation_id: str
    order_id: str
    customer_id: str
    amount: int
    currency: str
    reservation_id: str
    charge_id: str
    shipment_id: str
    status: Literal["confirmed", "cancelled"]


class OrdersPort(Protocol):
    """What an Order-service adapter does, as two activities."""

    async def confirm_order(self, input: ConfirmOrderInput) -> StepResult:
        """Record the confirmation; refuse with `ConfirmationRejected`."""
        ...

    async def cancel_order(self, input: CompensationInput) -> None:
        """Cancel the confirmation made under `input.effect_key`."""
        ...
