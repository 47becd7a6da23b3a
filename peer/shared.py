"""What the hand-written saga's workflow and activities both know: the order and a call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Item:
    """A quantity of one SKU, at a unit price in minor units."""

    sku: str
    quantity: int
    unit_price: int


@dataclass
class PeerOrder:
    """An order, as the hand-written saga takes it."""

    order_id: str
    customer_id: str
    items: list[Item]
    currency: str
    address: dict[str, str]
    card_token: str


@dataclass
class Call:
    """One call to a service: its idempotency key and its body."""

    key: str
    body: dict[str, Any]
