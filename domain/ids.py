"""How an order's saga and its effects are named: one saga per order id, one key per step.

Every mutating call carries an idempotency key made from the workflow id and the step, never
the attempt, so a retried or re-run activity has exactly one effect.
"""

from __future__ import annotations

#: The workflow id of an order's saga is this prefix and the order id.
WORKFLOW_ID_PREFIX = "order-"


def workflow_id_for(order_id: str) -> str:
    """The workflow id of an order's saga: one saga per order id, ever."""
    return f"{WORKFLOW_ID_PREFIX}{order_id}"


def order_id_of(workflow_id: str) -> str:
    """The order id of the saga `workflow_id`."""
    return workflow_id.removeprefix(WORKFLOW_ID_PREFIX)


def idempotency_key(workflow_id: str, step: str) -> str:
    """The key under which a step's effect is recorded by its service."""
    return f"{workflow_id}:{step}"
