"""The Shipping port: schedule delivery of an order's items to an address; cancel it."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel
from temporalio import activity

from domain.fields import Identifier, StrictModel
from domain.order import Address
from ports.contract import (
    CompensationInput,
    LineItem,
    LineItems,
    Refusal,
    ServiceContract,
    StepResult,
    WireModel,
)

SHIPPING_UNAVAILABLE = Refusal("ShippingUnavailable", 422)

CONTRACT = ServiceContract("shipping", refusals=(SHIPPING_UNAVAILABLE,))


class ShipmentRequest(WireModel):
    """Body of `POST /shipments`."""

    order_id: Identifier
    items: LineItems
    address: Address


class ScheduleShipmentInput(StrictModel):
    """Schedule delivery of the order's items to an address, under `idempotency_key`."""

    idempotency_key: str
    request: ShipmentRequest


class Shipment(BaseModel):
    """A shipment of an order's items: the answer of `POST /shipments` (never the address)."""

    shipment_id: str
    order_id: str
    status: Literal["scheduled", "cancelled"]
    items: list[LineItem]


class ShippingPort(Protocol):
    """What a Shipping adapter does, as two activities.

    The saga calls them by these methods; an adapter subclasses this class and implements
    them as activities of the same names.
    """

    @activity.defn
    async def schedule_shipment(self, input: ScheduleShipmentInput) -> StepResult:
        """Schedule the delivery; refuse with `ShippingUnavailable`."""
        ...

    @activity.defn
    async def cancel_shipment(self, input: CompensationInput) -> None:
        """Cancel the shipment scheduled under `input.effect_key`."""
        ...
