"""Search attributes the saga keeps current, so the Web UI and `starter.py` can filter orders."""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

#: The saga's state (`SagaState` value): `OrderStatus = "NeedsAttention"` in the Web UI.
ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
#: The customer's id (an opaque id, not personal data).
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
#: The order total in minor units.
ORDER_TOTAL = SearchAttributeKey.for_int("OrderTotal")
#: The step that failed (`Step` value), once one has.
FAILED_STEP = SearchAttributeKey.for_keyword("FailedStep")
#: While the saga waits for an operator: the compensation it waits on, its service, and since
#: when (unset once answered). What it holds is in its memo (`WAITING_MEMO`).
WAITING_ON = SearchAttributeKey.for_keyword("WaitingOn")
WAITING_SERVICE = SearchAttributeKey.for_keyword("WaitingService")
WAITING_SINCE = SearchAttributeKey.for_datetime("WaitingSince")

#: The memo key of a waiting saga's `domain.saga.Waiting`.
WAITING_MEMO = "waiting"

_KEYS: tuple[SearchAttributeKey[Any], ...] = (
    ORDER_STATUS,
    CUSTOMER_ID,
    ORDER_TOTAL,
    FAILED_STEP,
    WAITING_ON,
    WAITING_SERVICE,
    WAITING_SINCE,
)

#: name -> type, as `temporal server start-dev --search-attribute NAME=TYPE` takes them.
SEARCH_ATTRIBUTES = {
    key.name: key.indexed_value_type.name.title().replace("_", "") for key in _KEYS
}


def dev_server_args() -> list[str]:
    """Flags that make the dev server register the saga's search attributes at start."""
    return [f"--search-attribute={name}={kind}" for name, kind in SEARCH_ATTRIBUTES.items()]


def saga_query(status: str | None = None, customer_id: str | None = None) -> str:
    """A visibility query for the order sagas, by state and customer; the Web UI takes it too."""
    clauses = ["WorkflowType = 'OrderSaga'"]
    if status:
        clauses.append(f"{ORDER_STATUS.name} = '{status}'")
    if customer_id:
        clauses.append(f"{CUSTOMER_ID.name} = '{customer_id}'")
    return " AND ".join(clauses)
