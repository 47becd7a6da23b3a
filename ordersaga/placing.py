"""Placing an order: the checks and steps every client does before and as its saga starts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from domain.ids import workflow_id_for
from domain.order import CardDetails, OrderRequest, PaymentMethod
from domain.saga import OrderResult, SagaState
from workflows import OrderSaga
from workflows.search_attributes import CUSTOMER_ID, ORDER_STATUS, ORDER_TOTAL

#: Used for whatever `place` is not told, so that a demo order needs only an id and an item.
DEMO_ORDER: dict[str, Any] = {
    "customer_id": "cust-demo",
    "currency": "USD",
    "shipping_address": {
        "name": "Ada Demo",
        "line1": "1 Example Street",
        "city": "Springfield",
        "postal_code": "12345",
        "country": "US",
    },
}


class InputError(Exception):
    """The order is not valid; each line of `problems` names a field and what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def read_order_file(path: str) -> dict[str, Any]:
    """The JSON object in an order file; one clear line if it is unreadable or not one."""
    try:
        data = json.loads(Path(path).read_bytes())
    except OSError as err:
        raise InputError([f"file: cannot read {path}: {err.strerror or err}"]) from err
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}"
        raise InputError([f"file: {path} is not JSON ({err.msg} at {where})"]) from err
    except ValueError as err:  # not text: UnicodeDecodeError
        raise InputError([f"file: {path} is not JSON (not UTF-8 text)"]) from err
    if not isinstance(data, dict):
        kind = "an array" if isinstance(data, list) else "a single value"
        raise InputError([f"file: {path} must hold one order as a JSON object, not {kind}"])
    return data


async def tokenize(payment_url: str, card: CardDetails) -> PaymentMethod:
    """Exchange card details for a Payment-service token, so no card number reaches Temporal."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(f"{payment_url}/tokens", json=card.model_dump(mode="json"))
    if response.is_client_error:
        raise InputError([f"payment: the card was refused ({response.json().get('code')})"])
    response.raise_for_status()
    token = response.json()
    return PaymentMethod(token=token["token"], last4=token["last4"])


async def start_saga(
    client: Client, request: OrderRequest, task_queue: str
) -> WorkflowHandle[OrderSaga, OrderResult]:
    """Start one saga per order id, ever: a second start for the same id is refused.

    It starts with its search attributes (`OrderStatus`, `CustomerId`, `OrderTotal`); the saga
    keeps `OrderStatus` and `FailedStep` current because it was started with them.
    """
    return await client.start_workflow(
        OrderSaga.run,
        request,
        id=workflow_id_for(request.order_id),
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(ORDER_STATUS, SagaState.STARTED.value),
                SearchAttributePair(CUSTOMER_ID, request.customer_id),
                SearchAttributePair(ORDER_TOTAL, request.total),
            ]
        ),
    )
