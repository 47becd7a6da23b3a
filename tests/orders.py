"""Orders for tests: valid by default, with the deterministic refusal values at hand."""

from __future__ import annotations

import uuid
from typing import Any

from ordersaga.models import OrderRequest

DECLINED_TOKEN = "tok_declined"
SOLD_OUT_SKU = "SKU-SOLDOUT"
UNSERVED_POSTAL_CODE = "00000"
BLOCKED_CUSTOMER = "cust-blocked"


def make_order(**changes: Any) -> OrderRequest:
    """A valid order with a fresh id; `changes` replace top-level fields."""
    order: dict[str, Any] = {
        "order_id": f"t-{uuid.uuid4().hex[:12]}",
        "customer_id": "cust-1",
        "items": [
            {"sku": "SKU-BOOK", "quantity": 2, "unit_price": 1500},
            {"sku": "SKU-MUG", "quantity": 1, "unit_price": 899},
        ],
        "currency": "USD",
        "payment": {"token": "tok_visa", "last4": "4242"},
        "shipping_address": {
            "name": "Test Customer",
            "line1": "1 Test Street",
            "city": "Testville",
            "postal_code": "12345",
            "country": "US",
        },
    }
    return OrderRequest.model_validate(order | changes)
