"""The Inventory port: reserve all of an order's items or none; release the reservation."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel

from ordersaga.models import ActivityInput, CompensationInput, Identifier, OrderItem, StepResult
from ports.contract import Domain, LineItem, LineItems, Refusal, WireModel

OUT_OF_STOCK = Refusal("OutOfStock", 409, "an item is out of stock")
UNKNOWN_SKU = Refusal("UnknownSku", 422, "an item is no longer sold")

DOMAIN = Domain("inventory", refusals=(OUT_OF_STOCK, UNKNOWN_SKU))


class ReserveInventoryInput(ActivityInput):
    """Reserve the items of an order."""

    idempotency_key: str
    order_id: str
    items: list[OrderItem]


class ReserveRequest(WireModel):
    """Body of `POST /reservations`."""

    order_id: Identifier
    items: LineItems


class Reservation(BaseModel):
    """A reservation of stock for an order: the answer of `POST /reservations`."""

    reservation_id: str
    order_id: str
    status: Literal["reserved", "released"]
    items: list[LineItem]


class InventoryPort(Protocol):
    """What an Inventory adapter does, as two activities."""

    async def reserve_inventory(self, input: ReserveInventoryInput) -> StepResult:
        """Reserve every item, or none; refuse with `OutOfStock` or `UnknownSku`."""
        ...

    async def release_inventory(self, input: CompensationInput) -> None:
        """Put back what the reservation made under `input.effect_key` holds."""
        ...
