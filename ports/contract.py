"""What every port shares: refusals, every step's result, and the models of undo calls.

A port is the contract between the saga and one service it calls (see `ports/__init__.py`).
Its module holds everything both sides must agree on, once: the activity's input, the request
and answer on the wire, and the refusals with the HTTP status each is answered with.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from domain.fields import MAX_ITEMS_PER_ORDER, MAX_QUANTITY_PER_ITEM, Identifier, StrictModel
from domain.order import OrderItem


@dataclass(frozen=True)
class Refusal:
    """A service's final "no": nothing happened, so the saga neither retries nor undoes the call.

    Attributes:
        code: The stable `ApplicationError.type` (and the answer's `code`), such as `OutOfStock`.
        http_status: The status the service answers it with (a 4xx other than 408 and 429).
    """

    code: str
    http_status: int

    def __post_init__(self) -> None:
        if not 400 <= self.http_status < 500 or self.http_status in (408, 429):
            raise ValueError(
                f"refusal {self.code}: http_status {self.http_status} must be a 4xx other than "
                "408 and 429 (those are retried)"
            )


@dataclass(frozen=True)
class ServiceContract:
    """One service the saga calls, as its steps see it: its name and its refusals.

    The name is the service's URL path, database, settings key and stand-in module
    (`services/<name>.py`).
    """

    name: str
    refusals: tuple[Refusal, ...] = ()


class CompensationInput(StrictModel):
    """Undo the effect that a step recorded under `effect_key`; a no-op if there is none."""

    order_id: str
    effect_key: str


class StepResult(StrictModel):
    """What a forward step created at its service (a reservation, charge, shipment or order)."""

    id: str


#: A request the service could not read: a field missing or out of range.
INVALID_REQUEST = Refusal("InvalidRequest", 422)

#: A forward call that arrives after its undo (a late retry): refused, so it cannot take effect.
ALREADY_COMPENSATED = Refusal("AlreadyCompensated", 409)


class WireModel(BaseModel):
    """Base of request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LineItem(WireModel):
    """A quantity of one SKU."""

    sku: Identifier
    quantity: int = Field(ge=1, le=MAX_QUANTITY_PER_ITEM)


#: The items of one reservation or shipment.
LineItems = Annotated[list[LineItem], Field(min_length=1, max_length=MAX_ITEMS_PER_ORDER)]


class UndoRequest(WireModel):
    """Body of every undo call: the idempotency key of the forward call it undoes."""

    effect_key: str = Field(min_length=1, max_length=200)


#: The `status` of an undo whose effect never happened.
NOT_FOUND = "not_found"


class UndoResult(BaseModel):
    """Answer of an undo call."""

    effect_key: str
    status: str = Field(description=f"The record's status after the undo, or {NOT_FOUND!r}.")
    id: str | None = Field(default=None, description="The record the effect created, if any.")


def line_items(items: Iterable[OrderItem]) -> list[LineItem]:
    """The SKUs and quantities of an order's items, as a service takes them (no prices)."""
    return [LineItem(sku=item.sku, quantity=item.quantity) for item in items]
