"""Orders for tests: valid by default, with the deterministic refusal values at hand."""

from __future__ import annotations

import uuid
from typing import Any

from domain.fields import (
    MAX_ITEMS_PER_ORDER,
    MAX_QUANTITY_PER_ITEM,
    MAX_STEP_OVERRIDES,
    MAX_TEXT_LENGTH,
    MAX_UNIT_PRICE,
)
from domain.order import OrderRequest
from domain.policy import ActivityPolicy, SagaPolicy
from workflows import order_steps
from workflows.order_steps import ORDER_STEPS

DECLINED_TOKEN = "tok_declined"
SOLD_OUT_SKU = "SKU-SOLDOUT"
UNSERVED_POSTAL_CODE = "00000"
BLOCKED_CUSTOMER = "cust-blocked"

#: The table's steps and compensations, in its order, as lists: what tests record is a list.
STEPS = list(order_steps.STEPS)
COMPENSATIONS = list(order_steps.COMPENSATIONS)


def undone_after(step: str) -> list[str]:
    """The compensations that run when `step` is refused: those of the steps before it, reversed."""
    return COMPENSATIONS[: STEPS.index(step)][::-1]


def undone_through(step: str) -> list[str]:
    """The compensations that run when `step` may have happened: its own too, then the rest."""
    return COMPENSATIONS[: STEPS.index(step) + 1][::-1]


def events_before(step: str) -> list[str]:
    """The events of the steps done before `step`."""
    return [row.event for row in ORDER_STEPS[: STEPS.index(step)]]


def undone_events(compensations: list[str]) -> list[str]:
    """The events those compensations make, in their order."""
    return [row.undone_event for undo in compensations for row in ORDER_STEPS if row.undo == undo]


#: The business's retry shape (4 attempts, doubling backoff) at a tenth of a second, so tests of
#: transient faults against real services do not wait for the real 2 s, 4 s, 8 s.
FAST_POLICY = SagaPolicy(
    steps=ActivityPolicy(first_retry_s=0.1, max_retry_interval_s=1.0),
    compensations=ActivityPolicy(first_retry_s=0.1, max_retry_interval_s=1.0, max_attempts=10),
)

#: Two attempts at a compensation, then the saga waits for an operator.
IMPATIENT = FAST_POLICY.model_copy(
    update={"compensations": ActivityPolicy(first_retry_s=0.1, max_attempts=2)}
)


#: Steps back off 10 s after a failure: longer than a local activity may wait in its workflow
#: task, and than a withdrawal takes to arrive.
SLOW_RETRY = FAST_POLICY.model_copy(update={"steps": ActivityPolicy(first_retry_s=10.0)})


def on_path(policy: SagaPolicy, local_activities: bool) -> SagaPolicy:
    """`policy`, with its steps and compensations as local activities or not."""
    return policy.model_copy(update={"local_activities": local_activities})


def order_data(**changes: Any) -> dict[str, Any]:
    """A valid order as JSON-like data, with a fresh id; `changes` replace top-level fields."""
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
    return order | changes


def make_order(**changes: Any) -> OrderRequest:
    """A valid order with a fresh id; `changes` replace top-level fields."""
    return OrderRequest.model_validate(order_data(**changes))


#: Temporal's default limits: a payload (`limit.blobSize.error`), a workflow's history
#: (`limit.historySize.error`) and its events (`limit.historyCount.error`).
PAYLOAD_LIMIT = 2 * 1024 * 1024
HISTORY_LIMIT = 50 * 1024 * 1024
EVENTS_LIMIT = 51_200


def biggest_order(token: str, last4: str) -> OrderRequest:
    """The largest order the input admits: every list at its longest, every text and id at
    its longest, every amount at its highest; paid with `token`."""
    text = "x" * MAX_TEXT_LENGTH

    def longest(prefix: str) -> str:
        return (prefix + uuid.uuid4().hex * 2)[:64]

    policy = ActivityPolicy(first_retry_s=0.1, max_retry_interval_s=1.0)
    return OrderRequest.model_validate(
        {
            "order_id": longest("big-"),
            "customer_id": longest("cust-"),
            "items": [
                {
                    "sku": longest(f"SKU-{index:02d}-"),
                    "quantity": MAX_QUANTITY_PER_ITEM,
                    "unit_price": MAX_UNIT_PRICE,
                }
                for index in range(MAX_ITEMS_PER_ORDER)
            ],
            "currency": "USD",
            "payment": {"token": token, "last4": last4},
            "shipping_address": {
                "name": text,
                "line1": text,
                "line2": text,
                "city": text,
                "postal_code": "9" * 12,
                "country": "US",
            },
            "policy": {
                "steps": policy,
                "step_overrides": {
                    longest(f"{index:02d}-"): policy for index in range(MAX_STEP_OVERRIDES)
                },
            },
        }
    )
