"""The Inventory port: reserve all of an order's items or none; release the reservation."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel
from temporalio import activity

from domain.fields import Identifier, StrictModel
from ports.contract import (
    CompensationInput,
    LineItem,
    LineItems,
    Refusal,
    ServiceContract,
    StepResult,
    WireModel,
)

OUT_OF_STOCK = Refusal("OutOfStock", 409)
UNKNOWN_SKU = Refusal("UnknownSku", 422)

CONTRACT = ServiceContract("inventory", refusals=(OUT_OF_STOCK, UNKNOWN_SKU))


class ReserveRequest(WireModel):
    """Body of `POST /reservations`."""

    order_id: Identifier
    items: LineItems


class ReserveInventoryInput(StrictModel):
    """Reserve the items of an order, under `idempotency_key`."""

    idempotency_key: str
    request: ReserveRequest


class Reservation(BaseModel):
    """A reservation of stock for an order: the answer of `POST /reservations`."""

    reservation_id: str
    order_id: str
    status: Literal["reserved", "released"]
    items: list[LineItem]


class InventoryPort(Protocol):
    """What an Inventory adapter does, as two activities.

    The saga calls them by these methods; an adapter subclasses this class and implements
    them as activities of the same names.
    """

    @activity.defn
    async def reserve_inventory(self, input: ReserveInventoryInput) -> StepResult:
        """Reserve every item, or none; refuse with `OutOfStock` or `UnknownSku`."""
        ...

    @activity.defn
    async def release_inventory(self, input: CompensationInput) -> None:
        """Put back what the reservation made under `input.effect_key` holds."""
        ...
