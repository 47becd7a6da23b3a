"""The order desk: placing orders, and what can be done with their sagas from outside.

Placing is the checks before a saga starts (an order file read, a card exchanged for a token)
and the start itself, once per order id; then look up, list, withdraw, resolve. One place for
the Temporal calls behind `starter.py` and the Order API, so that both place an order once per
id, read a saga the same way and refuse the same things with the same words.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import httpx
import structlog
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
    model_validator,
)
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
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

from domain.fields import Identifier
from domain.ids import order_id_of, workflow_id_for
from domain.money import both_units
from domain.order import CardDetails, OrderRequest, PaymentMethod
from domain.saga import OrderResult, Resolution, SagaState, SagaStatus, Waiting, Withdrawal
from workflows import OrderSaga
from workflows.order_steps import COMPENSATIONS, SERVICES
from workflows.search_attributes import (
    CUSTOMER_ID,
    FAILED_STEP,
    ORDER_STATUS,
    ORDER_TOTAL,
    WAITING_MEMO,
    WAITING_ON,
    WAITING_SERVICE,
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
    client: Client,
    request: OrderRequest,
    task_queue: str,
    *,
    rpc_timeout: timedelta | None = None,
) -> WorkflowHandle[OrderSaga, OrderResult]:
    """Start one saga per order id, ever: a second start for the same id is refused.

    It starts with its search attributes (`OrderStatus`, `CustomerId`, `OrderTotal`); the saga
    keeps `OrderStatus` and `FailedStep` current because it was started with them. Without
    `rpc_timeout`, a start across a broken network waits for it to heal.
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
        rpc_timeout=rpc_timeout,
    )


log = structlog.get_logger()

Update = TypeVar("Update", Withdrawal, Resolution)

#: How long a saga's worker is given to answer a query or take up an update, and Temporal to
#: answer any other call: a saga whose worker is gone, or a server across a broken network, is
#: not waited for (the API answers 503).
ANSWER_TIMEOUT = timedelta(seconds=5)

#: The longest a desk call waits on Temporal, whatever the network does. A call's own deadline
#: does not bound it while the client makes its connection again across a broken link (a view
#: was seen waiting over a minute), so each call is bounded here too: two answers and a margin.
DESK_DEADLINE_S = 2 * ANSWER_TIMEOUT.total_seconds() + 2

Params = ParamSpec("Params")
Answer = TypeVar("Answer")


@contextlib.asynccontextmanager
async def _answered_in_time() -> AsyncIterator[None]:
    """Bound what the context waits on Temporal by `DESK_DEADLINE_S`.

    Raises:
        RPCError: `DEADLINE_EXCEEDED`, as a call past its own deadline raises it.
    """
    try:
        async with asyncio.timeout(DESK_DEADLINE_S):
            yield
    except TimeoutError:
        raise RPCError(
            f"Temporal did not answer within {DESK_DEADLINE_S:g} s",
            RPCStatusCode.DEADLINE_EXCEEDED,
            b"",
        ) from None


def _bounded(
    method: Callable[Params, Awaitable[Answer]],
) -> Callable[Params, Awaitable[Answer]]:
    """`method`, answering within `DESK_DEADLINE_S` (`_answered_in_time`)."""

    @functools.wraps(method)
    async def bounded(*args: Params.args, **kwargs: Params.kwargs) -> Answer:
        async with _answered_in_time():
            return await method(*args, **kwargs)

    return bounded


class UnknownOrder(LookupError):
    """No saga was ever started for the order id."""


class OrderConflict(Exception):
    """The order id is taken by an order with another body."""


class BadCursor(ValueError):
    """A page's cursor that no listing gave."""


#: What a bad cursor is told.
NOT_A_CURSOR = "cursor: must be the next_cursor of a page of this listing"


class ActionRefused(Exception):
    """The saga refused what was asked, or has ended; the message says why.

    A withdrawal after the order was confirmed, say, or a resolution with nothing to resolve.
    """


#: The most sagas one page of a listing holds.
MAX_PAGE = 1000


class WaitingFilter(BaseModel):
    """Which waiting sagas to list, and how many a page.

    Attributes:
        compensation: Only those waiting on this compensation (`cancel_shipment`).
        service: Only those whose waiting compensation calls this service (`shipping`).
        limit: At most this many a page.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    compensation: str | None = None
    service: str | None = None
    limit: int = Field(default=100, ge=1, le=MAX_PAGE)

    @field_validator("compensation")
    @classmethod
    def _a_compensation_of_the_saga(cls, name: str | None) -> str | None:
        return _one_of(name, COMPENSATIONS)

    @field_validator("service")
    @classmethod
    def _a_service_of_the_saga(cls, name: str | None) -> str | None:
        return _one_of(name, SERVICES)


#: No filter, the default page size.
EVERY_WAITING_SAGA = WaitingFilter()


class WaitingSaga(Waiting):
    """What a saga waiting for an operator waits on, with what it holds in words."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def held(self) -> str:
        """What the saga still holds: each held step's id and the money charged, or nothing."""
        held = ", ".join(f"{step} {created}" for step, created in self.holds.items()) or "nothing"
        if self.charged is not None and self.currency:
            held += f" ({both_units(self.charged, self.currency)} charged)"
        return held


class WaitingPage(BaseModel):
    """A page of the sagas waiting for an operator.

    Attributes:
        sagas: What each waits on and holds, oldest listing order first.
        unrecorded: Waiting sagas of a build that keeps no such record: ask each its status.
        total: How many wait, over every page.
        next_cursor: The next page's cursor; None on the last page.
    """

    sagas: list[WaitingSaga] = []
    unrecorded: list[str] = []
    total: int = 0
    next_cursor: str | None = None


#: How many sagas one bulk answer asks at once.
BULK_CONCURRENCY = 64

#: How long a bulk answer waits for each saga to accept: longer than a person's single answer
#: waits, as a thousand answers queue at their workers; a saga silent that long is unanswered.
BULK_ANSWER_TIMEOUT = timedelta(seconds=30)


class BulkAnswer(BaseModel):
    """An operator's answer to many waiting sagas at once.

    Attributes:
        resolution: Retry, or mark done with a reason (each saga records it).
        order_ids: The sagas to answer (at most a page's worth); if None, every waiting saga
            `filters` finds.
        filters: Which waiting sagas, when no ids are given.
        action_id: Names the action: run again with the same id, it answers each saga once.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    resolution: Resolution
    order_ids: list[Identifier] | None = Field(default=None, min_length=1, max_length=MAX_PAGE)
    filters: WaitingFilter = EVERY_WAITING_SAGA
    action_id: Identifier = Field(default_factory=lambda: f"bulk-{uuid.uuid4().hex[:12]}")

    @model_validator(mode="after")
    def _names_its_sagas(self) -> BulkAnswer:
        if self.order_ids is None and not (self.filters.compensation or self.filters.service):
            raise ValueError("order_ids: name the sagas, or filter them by compensation or service")
        return self


class BulkOutcome(BaseModel):
    """How a bulk answer went, saga by saga.

    Attributes:
        action_id: The action's id: run it again with it to finish what is left.
        total: How many sagas it was to answer.
        answered: Those that took the answer up (now, or when this action ran before).
        refused: Those that did not, and why (no longer waiting, ended, unknown).
        unanswered: Those whose worker did not answer in time: run the action again.
    """

    action_id: str
    total: int = 0
    answered: list[str] = []
    refused: dict[str, str] = {}
    unanswered: list[str] = []


class OrderView(SagaStatus):
    """Where an order's saga stands (its `status` query), and its workflow's status.

    Attributes:
        workflow_status: `RUNNING`, `COMPLETED`, `FAILED`, `CANCELED`, ... as Temporal has it.
    """

    workflow_status: str


class RecordedView(BaseModel):
    """Where a saga stands by the server's records alone: what is known when it does not answer.

    Attributes:
        order_id: The order.
        workflow_status: Its workflow's status.
        state: Its last searchable state (`OrderStatus`).
        failed_step: The step that failed, if one did.
        waiting: What it waits on, if it waits for an operator.
        retrying: Its activities on a second attempt or later, with their last failure.
    """

    order_id: str
    workflow_status: str
    state: str | None
    failed_step: str | None
    waiting: WaitingSaga | None
    retrying: list[str]


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

    @_bounded
    async def place(self, order: OrderRequest) -> bool:
        """Start `order`'s saga; a repeat of the same order starts nothing (`is_repeat_of`).

        Returns:
            Whether this call started it (False: the same order was placed before).

        Raises:
            OrderConflict: The order id was placed before with another body.
        """
        try:
            await start_saga(self._client, order, self._task_queue, rpc_timeout=ANSWER_TIMEOUT)
        except WorkflowAlreadyStartedError:
            placed = await self._placed_as(order.order_id)
            if placed is None or not order.is_repeat_of(placed):
                raise OrderConflict(
                    f"order {order.order_id} was placed before with another body"
                ) from None
            return False
        return True

    @_bounded
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

    @_bounded
    async def recorded(self, order_id: str) -> RecordedView:
        """Where `order_id`'s saga stands by the server's records, asking no saga.

        What `view` falls back on when the saga's worker does not answer.

        Raises:
            UnknownOrder: No saga has that order id.
        """
        description = await self._describe(self._handle(order_id))
        attributes = description.typed_search_attributes
        return RecordedView(
            order_id=order_id,
            workflow_status=_status_name(description.status),
            state=attributes.get(ORDER_STATUS),
            failed_step=attributes.get(FAILED_STEP),
            waiting=await description.memo_value(WAITING_MEMO, None, type_hint=WaitingSaga),
            retrying=[
                f"{pending.activity_type.name} (attempt {pending.attempt}: "
                f"{pending.last_failure.message or 'no answer yet'})"
                for pending in description.raw_description.pending_activities
                if pending.attempt > 1
            ],
        )

    @_bounded
    async def listing(
        self, state: str | None = None, customer_id: str | None = None, limit: int | None = 100
    ) -> list[OrderSummary]:
        """The newest sagas (at most `limit`) in `state` and of `customer_id`, if given."""
        found = []
        async for execution in self._client.list_workflows(
            saga_query(state, customer_id), limit=limit, rpc_timeout=ANSWER_TIMEOUT
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

    @_bounded
    async def waiting(
        self, filters: WaitingFilter = EVERY_WAITING_SAGA, cursor: str | None = None
    ) -> WaitingPage:
        """One page of the sagas that wait for an operator, with what each waits on and holds.

        Read from the server's visibility (each saga's memo and search attributes) in one
        listing: no saga is asked, so the answer comes as fast with a thousand sagas waiting,
        and when their workers do not answer.

        Raises:
            BadCursor: `cursor` is not one this listing gave.
        """
        query = _waiting_query(filters)
        listing = self._client.list_workflows(
            query,
            page_size=filters.limit,
            next_page_token=_page_token(cursor),
            rpc_timeout=ANSWER_TIMEOUT,
        )
        try:
            counted, _ = await asyncio.gather(
                self._client.count_workflows(query, rpc_timeout=ANSWER_TIMEOUT),
                listing.fetch_next_page(),
            )
        except RPCError as err:
            if cursor is None or err.status != RPCStatusCode.INVALID_ARGUMENT:
                raise
            raise BadCursor(NOT_A_CURSOR) from None
        page = WaitingPage(total=counted.count, next_cursor=_cursor(listing.next_page_token))
        for execution in listing.current_page or ():
            waits = await execution.memo_value(WAITING_MEMO, None, type_hint=WaitingSaga)
            if waits is None:  # a saga of a build that kept no memo: its status says
                page.unrecorded.append(order_id_of(execution.id))
            else:
                page.sagas.append(waits)
        return page

    async def answer_waiting(
        self,
        answer: BulkAnswer,
        progress: Callable[[BulkOutcome], None] = lambda outcome: None,
    ) -> BulkOutcome:
        """One operator's answer to many waiting sagas: those named, or those the filter finds.

        At most `BULK_CONCURRENCY` sagas are asked at once. Each gets the answer as an update
        whose id is the action's: the server applies one id once per saga, so the same action
        run again (after a crash, or for the sagas that did not answer) answers each saga at
        most once, and finishes what is left.

        Args:
            answer: The resolution, and which sagas.
            progress: Told the outcome so far after each saga.
        """
        outcome = BulkOutcome(action_id=answer.action_id)
        if answer.order_ids is not None:
            order_ids = list(dict.fromkeys(answer.order_ids))  # each saga once
        else:
            found = self._client.list_workflows(
                _waiting_query(answer.filters), page_size=MAX_PAGE, rpc_timeout=ANSWER_TIMEOUT
            )
            async with _answered_in_time():
                order_ids = [order_id_of(execution.id) async for execution in found]
        outcome.total = len(order_ids)
        asking = asyncio.Semaphore(BULK_CONCURRENCY)

        async def ask(order_id: str) -> None:
            async with asking:
                try:
                    # Accepted is answered: the saga's history holds the answer, and it acts.
                    await self._send(
                        order_id,
                        OrderSaga.resolve_compensation,
                        answer.resolution,
                        update_id=f"answer-{answer.action_id}",
                        within=BULK_ANSWER_TIMEOUT,
                    )
                    outcome.answered.append(order_id)
                except (ActionRefused, UnknownOrder) as err:
                    outcome.refused[order_id] = str(err) or f"no saga for order {order_id}"
                except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError):
                    task = asyncio.current_task()
                    if task and task.cancelling():  # the SDK words a cancellation this way too
                        raise asyncio.CancelledError from None
                    outcome.unanswered.append(order_id)
            progress(outcome)

        await asyncio.gather(*(ask(order_id) for order_id in order_ids))
        return outcome

    @_bounded
    async def withdraw(self, order_id: str, withdrawal: Withdrawal) -> SagaStatus:
        """The customer takes the order back; the saga's status once it has ended.

        Raises:
            UnknownOrder: No saga has that order id.
            ActionRefused: The order can no longer be withdrawn.
        """
        return await self._update(order_id, OrderSaga.withdraw, withdrawal)

    @_bounded
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
        """Send `update` and return the saga's status once it has taken it up."""
        taken = await self._send(order_id, update, arg)
        try:
            return await taken.result()
        except WorkflowUpdateFailedError as err:
            raise ActionRefused(str(err.cause)) from None

    async def _send(
        self,
        order_id: str,
        update: UpdateMethodMultiParam[[OrderSaga, Update], SagaStatus],
        arg: Update,
        update_id: str | None = None,
        within: timedelta = ANSWER_TIMEOUT,
    ) -> WorkflowUpdateHandle[SagaStatus]:
        """Send `update`; return once the saga has accepted it (its history holds it).

        Raises:
            WorkflowUpdateRPCTimeoutOrCancelledError: Not accepted `within` that long.
        """
        handle = self._handle(order_id)
        try:
            return await handle.start_update(
                update,
                arg,
                id=update_id,
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                rpc_timeout=within,
            )
        except WorkflowUpdateFailedError as err:
            raise ActionRefused(str(err.cause)) from None
        except RPCError:
            description = await self._describe(handle)
            if description.status is WorkflowExecutionStatus.RUNNING:
                raise
            ended = description.status.name if description.status else "ended"
            raise ActionRefused(f"the saga of order {order_id} has ended ({ended})") from None

    def _handle(self, order_id: str) -> WorkflowHandle[OrderSaga, OrderResult]:
        return self._client.get_workflow_handle_for(OrderSaga.run, workflow_id_for(order_id))

    @staticmethod
    async def _describe(
        handle: WorkflowHandle[OrderSaga, OrderResult],
    ) -> WorkflowExecutionDescription:
        try:
            return await handle.describe(rpc_timeout=ANSWER_TIMEOUT)
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise UnknownOrder(f"no order {order_id_of(handle.id)}") from None
            raise

    async def _placed_as(self, order_id: str) -> OrderRequest | None:
        """The order `order_id`'s saga was started with, if it was a valid order."""
        history = self._handle(order_id).fetch_history_events(
            page_size=1, rpc_timeout=ANSWER_TIMEOUT
        )
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


def _cursor(token: bytes | None) -> str | None:
    return base64.urlsafe_b64encode(token).decode() if token else None


def _waiting_query(filters: WaitingFilter) -> str:
    """The visibility query of the sagas waiting for an operator that `filters` choose."""
    query = f"{saga_query(SagaState.NEEDS_ATTENTION.value)} AND ExecutionStatus = 'Running'"
    for key, value in ((WAITING_ON, filters.compensation), (WAITING_SERVICE, filters.service)):
        if value:
            query += f" AND {key.name} = '{value}'"
    return query


def _page_token(cursor: str | None) -> bytes | None:
    if cursor is None:
        return None
    try:
        return base64.urlsafe_b64decode(cursor.encode())
    except (ValueError, binascii.Error):
        raise BadCursor(NOT_A_CURSOR) from None


def _one_of(name: str | None, names: Sequence[str]) -> str | None:
    if name is not None and name not in names:
        raise ValueError(f"must be one of {', '.join(names)}")
    return name
