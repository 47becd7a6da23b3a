"""The order desk: placing orders, and what can be done with their sagas from outside.

Placing is the checks before a saga starts (an order file read, a card exchanged for a token)
and the start itself, once per order id; then look up, list, withdraw, resolve. One place for
the Temporal calls behind `starter.py` and the Order API, so that both place an order once per
id, read a saga the same way and refuse the same things with the same words.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import structlog
from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from domain.ids import order_id_of, workflow_id_for
from domain.order import CardDetails, OrderRequest, PaymentMethod
from domain.saga import OrderResult, Resolution, SagaState, SagaStatus, Withdrawal
from workflows import OrderSaga
from workflows.search_attributes import (
    CUSTOMER_ID,
    FAILED_STEP,
    ORDER_STATUS,
    ORDER_TOTAL,
    saga_query,
)

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


log = structlog.get_logger()

Update = TypeVar("Update", Withdrawal, Resolution)

#: How long a saga's worker is given to answer a query or take up an update: a saga whose
#: worker is gone is not waited for.
ANSWER_TIMEOUT = timedelta(seconds=5)


class UnknownOrder(LookupError):
    """No saga was ever started for the order id."""


class OrderConflict(Exception):
    """The order id is taken by an order with another body."""


class ActionRefused(Exception):
    """The saga refused what was asked, or has ended; the message says why.

    A withdrawal after the order was confirmed, say, or a resolution with nothing to resolve.
    """


class OrderView(SagaStatus):
    """Where an order's saga stands (its `status` query), and its workflow's status.

    Attributes:
        workflow_status: `RUNNING`, `COMPLETED`, `FAILED`, `CANCELED`, ... as Temporal has it.
    """

    workflow_status: str


class OrderSummary(BaseModel):
    """One saga as the visibility store lists it (its search attributes).

    Attributes:
        order_id: The order.
        workflow_status: Its workflow's status.
        state: `OrderStatus`: the saga's state where people filter on it.
        customer_id: `CustomerId`.
        total: `OrderTotal`, in minor units.
        failed_step: `FailedStep`, if a step failed.
        started_at: When the saga started.
    """

    order_id: str
    workflow_status: str
    state: str | None
    customer_id: str | None
    total: int | None
    failed_step: str | None
    started_at: datetime


class OrderDesk:
    """Order sagas on one Temporal client and task queue."""

    def __init__(self, client: Client, task_queue: str) -> None:
        """Work with the sagas of `client`'s namespace, started on `task_queue`."""
        self._client = client
        self._task_queue = task_queue

    async def place(self, order: OrderRequest) -> bool:
        """Start `order`'s saga; a repeat of the same order starts nothing (`is_repeat_of`).

        Returns:
            Whether this call started it (False: the same order was placed before).

        Raises:
            OrderConflict: The order id was placed before with another body.
        """
        try:
            await start_saga(self._client, order, self._task_queue)
        except WorkflowAlreadyStartedError:
            placed = await self._placed_as(order.order_id)
            if placed is None or not order.is_repeat_of(placed):
                raise OrderConflict(
                    f"order {order.order_id} was placed before with another body"
                ) from None
            return False
        return True

    async def view(self, order_id: str) -> OrderView:
        """Where `order_id`'s saga stands.

        Raises:
            UnknownOrder: No saga has that order id.
        """
        handle = self._handle(order_id)
        description = await self._describe(handle)
        status = await handle.query(OrderSaga.status, rpc_timeout=ANSWER_TIMEOUT)
        workflow_status = _status_name(description.status)
        return OrderView(**status.model_dump(), workflow_status=workflow_status)

    async def listing(
        self, state: str | None = None, customer_id: str | None = None, limit: int | None = 100
    ) -> list[OrderSummary]:
        """The newest sagas (at most `limit`) in `state` and of `customer_id`, if given."""
        found = []
        async for execution in self._client.list_workflows(
            saga_query(state, customer_id), limit=limit
        ):
            attributes = execution.typed_search_attributes
            found.append(
                OrderSummary(
                    order_id=order_id_of(execution.id),
                    workflow_status=_status_name(execution.status),
                    state=attributes.get(ORDER_STATUS),
                    customer_id=attributes.get(CUSTOMER_ID),
                    total=attributes.get(ORDER_TOTAL),
                    failed_step=attributes.get(FAILED_STEP),
                    started_at=execution.start_time,
                )
            )
        return found

    async def needing_attention(self) -> list[SagaStatus]:
        """The running sagas that wait for an operator, with what they wait on.

        A saga whose worker does not answer is left out (and logged), not the whole list.
        """
        query = f"{saga_query(SagaState.NEEDS_ATTENTION.value)} AND ExecutionStatus = 'Running'"
        waiting = []
        async for execution in self._client.list_workflows(query):
            handle = self._client.get_workflow_handle_for(OrderSaga.run, execution.id)
            try:
                status = await handle.query(OrderSaga.status, rpc_timeout=ANSWER_TIMEOUT)
            except (WorkflowQueryFailedError, RPCError) as err:
                log.warning("saga did not answer", workflow_id=execution.id, error=str(err))
                continue
            if status.attention:
                waiting.append(status)
        return waiting

    async def withdraw(self, order_id: str, withdrawal: Withdrawal) -> SagaStatus:
        """The customer takes the order back; the saga's status once it has ended.

        Raises:
            UnknownOrder: No saga has that order id.
            ActionRefused: The order can no longer be withdrawn.
        """
        return await self._update(order_id, OrderSaga.withdraw, withdrawal)

    async def resolve(self, order_id: str, resolution: Resolution) -> SagaStatus:
        """An operator's answer to the compensation the saga waits on; its status after.

        Raises:
            UnknownOrder: No saga has that order id.
            ActionRefused: No compensation of the saga waits for an operator.
        """
        return await self._update(order_id, OrderSaga.resolve_compensation, resolution)

    async def _update(
        self,
        order_id: str,
        update: UpdateMethodMultiParam[[OrderSaga, Update], SagaStatus],
        arg: Update,
    ) -> SagaStatus:
        handle = self._handle(order_id)
        try:
            taken = await handle.start_update(
                update, arg, wait_for_stage=WorkflowUpdateStage.ACCEPTED, rpc_timeout=ANSWER_TIMEOUT
            )
            result = await taken.result()
        except WorkflowUpdateFailedError as err:
            raise ActionRefused(str(err.cause)) from None
        except RPCError:
            description = await self._describe(handle)
            if description.status is WorkflowExecutionStatus.RUNNING:
                raise
            ended = description.status.name if description.status else "ended"
            raise ActionRefused(f"the saga of order {order_id} has ended ({ended})") from None
        return result

    def _handle(self, order_id: str) -> WorkflowHandle[OrderSaga, OrderResult]:
        return self._client.get_workflow_handle_for(OrderSaga.run, workflow_id_for(order_id))

    @staticmethod
    async def _describe(
        handle: WorkflowHandle[OrderSaga, OrderResult],
    ) -> WorkflowExecutionDescription:
        try:
            return await handle.describe()
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise UnknownOrder(f"no order {order_id_of(handle.id)}") from None
            raise

    async def _placed_as(self, order_id: str) -> OrderRequest | None:
        """The order `order_id`'s saga was started with, if it was a valid order."""
        history = self._handle(order_id).fetch_history_events(page_size=1)
        started = (await anext(history)).workflow_execution_started_event_attributes
        try:
            [placed] = await self._client.data_converter.decode(
                started.input.payloads, [OrderRequest]
            )
        except ValueError:  # not an order this API would take: another body, whatever it was
            return None
        return placed if isinstance(placed, OrderRequest) else None


def _status_name(status: WorkflowExecutionStatus | None) -> str:
    """A workflow's status as Temporal names it (`RUNNING`, `FAILED`, ...)."""
    return status.name if status else "UNKNOWN"
