"""The Order port: record the order as confirmed, with what each step created; cancel it."""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

from pydantic import ConfigDict, Field, StringConstraints
from temporalio import activity

from domain.fields import Identifier, StrictModel
from ports.contract import CompensationInput, Refusal, ServiceContract, StepResult, WireModel

CONFIRMATION_REJECTED = Refusal("ConfirmationRejected", 409)

CONTRACT = ServiceContract("orders", refusals=(CONFIRMATION_REJECTED,))

RecordId = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class ConfirmRequest(WireModel):
    """Body of `POST /confirmations`."""

    order_id: Identifier
    customer_id: Identifier
    amount: int = Field(gt=0, description="Minor units of `currency`.")
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    reservation_id: RecordId
    charge_id: RecordId
    shipment_id: RecordId


class ConfirmOrderInput(StrictModel):
    """Record the order as confirmed with the Order service, under `idempotency_key`."""

    idempotency_key: str
    request: ConfirmRequest


class OrderRecord(ConfirmRequest):
    """An order as the Order service records it: the answer of `POST /confirmations`."""

    model_config = ConfigDict(extra="ignore")

    confirmation_id: str
    status: Literal["confirmed", "cancelled"]


class OrdersPort(Protocol):
    """What an Order-service adapter does, as two activities.

    The saga calls them by these methods; an adapter subclasses this class and implements
    them as activities of the same names.
    """

    @activity.defn
    async def confirm_order(self, input: ConfirmOrderInput) -> StepResult:
        """Record the confirmation; refuse with `ConfirmationRejected`."""
        ...

    @activity.defn
    async def cancel_order(self, input: CompensationInput) -> None:
        """Cancel the confirmation made under `input.effect_key`."""
        ...
