"""The Shipping port: schedule delivery of an order's items to an address; cancel it."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel

from ordersaga.models import (
    ActivityInput,
    Address,
    CompensationInput,
    Identifier,
    OrderItem,
    StepResult,
)
from ports.contract import Domain, LineItem, LineItems, Refusal, WireModel

SHIPPING_UNAVAILABLE = Refusal("ShippingUnavailable", 422, "we cannot deliver to the address given")

DOMAIN = Domain("shipping", refusals=(SHIPPING_UNAVAILABLE,))


class ScheduleShipmentInput(ActivityInput):
    """Schedule delivery of the order's items to an address."""

    idempotency_key: str
    order_id: str
    items: list[OrderItem]
    address: Address


class ShipmentRequest(WireModel):
    """Body of `POST /shipments`."""

    order_id: Identifier
    items: LineItems
    address: Address


class Shipment(BaseModel):
    """A shipment of an order's items: the answer of `POST /shipments` (never the address)."""

    shipment_id: str
    order_id: str
    status: Literal["scheduled", "cancelled"]
    items: list[LineItem]


class ShippingPort(Protocol):
    """What a Shipping adapter does, as two activities."""

    async def schedule_shipment(self, input: ScheduleShipmentInput) -> StepResult:
        """Schedule the delivery; refuse with `ShippingUnavailable`."""
        ...

    async def cancel_shipment(self, input: CompensationInput) -> None:
        """Cancel the shipment scheduled under `input.effect_key`."""
        ...
