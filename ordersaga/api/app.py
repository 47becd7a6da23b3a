"""The Order API's routes: HTTP in front of `ordersaga.order_desk`.

Every route needs a bearer token (`ordersaga.api.auth`); the OpenAPI document does too. Bad
input is refused with 422 and one line per problem naming the field, never repeating a value
(a card number sent instead of a token is neither stored nor logged); nothing is started for a
refused request. The two pages are static files: they hold no data and call the API with the
token they are given.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from importlib.resources import files
from pathlib import PurePath
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request
from fastapi import Response as HTTPResponse
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from temporalio.client import (
    Client,
    WorkflowQueryFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError

from domain.fields import Identifier
from domain.order import OrderRequest
from domain.problems import describe_problems
from domain.saga import Resolution, SagaStatus, Withdrawal
from ordersaga.api.auth import Role, Tokens, allow
from ordersaga.order_desk import (
    ActionRefused,
    BadCursor,
    BulkAnswer,
    BulkOutcome,
    OrderConflict,
    OrderDesk,
    OrderSummary,
    OrderView,
    UnknownOrder,
    WaitingFilter,
    WaitingPage,
)
from workflows.order_steps import COMPENSATIONS, SEARCHABLE_STATES, SERVICES

log = structlog.get_logger()

#: The states `GET /orders` filters on, as its refusal lists them.
STATES = ", ".join(SEARCHABLE_STATES)

#: The pages the API serves (and the script they share), by path: static files, no data.
PAGES = {"/checkout": "checkout.html", "/operator": "operator.html", "/api.js": "api.js"}

#: Lists the pages take from the step table, by their placeholder in a page file.
PAGE_LISTS = {"__COMPENSATIONS__": COMPENSATIONS, "__SERVICES__": SERVICES}

#: The media type of each kind of page file.
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

#: Why a route may refuse a request, by status code.
REFUSALS = {
    401: "no bearer token, or an unknown one",
    403: "the token of a role that may not do this",
    404: "no order has this id",
    409: "the order id is taken by another order, or the saga refused the action",
    422: "the request is not valid: one line per problem",
    503: "Temporal or the saga's worker did not answer",
}


class Problem(BaseModel):
    """What a refused request gets.

    Attributes:
        detail: Why, in one line.
        problems: For invalid input, one line per problem, each naming the field.
    """

    detail: str
    problems: list[str] = []


class OrderAccepted(BaseModel):
    """A placed order: its saga runs; its status is at `status_url` (also `Location`)."""

    order_id: str
    status_url: str


def _refusals(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented refusals of a route, with the `Problem` they answer."""
    return {code: {"model": Problem, "description": REFUSALS[code]} for code in codes}


def _desk(request: Request) -> OrderDesk:
    desk: OrderDesk = request.app.state.desk
    return desk


Desk = Annotated[OrderDesk, Depends(_desk)]
OrderId = Annotated[Identifier, Path(description="the order's id")]
SHOP = Depends(allow(Role.SHOP))
OPERATOR = Depends(allow(Role.OPERATOR))
EITHER = Depends(allow(Role.SHOP, Role.OPERATOR))
NO_REASON = Withdrawal()

router = APIRouter()


@router.post(
    "/orders", status_code=202, dependencies=[SHOP], responses=_refusals(401, 403, 409, 422)
)
async def place_order(order: OrderRequest, desk: Desk, response: HTTPResponse) -> OrderAccepted:
    """Place an order: its saga starts, once per order id.

    The same order again (`OrderRequest.is_repeat_of`) answers as the first call did; another
    body under that id, 409. Payment is a token (`tok_...`), never a card number.
    """
    if await desk.place(order):
        log.info("order placed", order_id=order.order_id)
    status_url = f"/orders/{order.order_id}"
    response.headers["Location"] = status_url
    return OrderAccepted(order_id=order.order_id, status_url=status_url)


@router.get("/orders/{order_id}", dependencies=[EITHER], responses=_refusals(401, 404, 422, 503))
async def order_status(order_id: OrderId, desk: Desk) -> OrderView:
    """Where the order's saga stands: state, steps done, compensations, reason."""
    return await desk.view(order_id)


@router.get("/orders", dependencies=[EITHER], responses=_refusals(401, 422))
async def list_orders(
    desk: Desk,
    status: Annotated[
        str | None,
        Query(
            description="the saga's state (`OrderStatus`)",
            json_schema_extra={"enum": list(SEARCHABLE_STATES)},
        ),
    ] = None,
    customer: Annotated[Identifier | None, Query(description="the customer's id")] = None,
) -> list[OrderSummary]:
    """The newest 100 order sagas, by state and customer, from the search attributes."""
    if status is not None and status not in SEARCHABLE_STATES:
        problem = {"loc": ("query", "status"), "type": "enum", "msg": f"must be one of {STATES}"}
        raise RequestValidationError([problem])
    return await desk.listing(status, customer)


@router.post(
    "/orders/{order_id}/withdraw",
    dependencies=[SHOP],
    responses=_refusals(401, 403, 404, 409, 422, 503),
)
async def withdraw_order(
    order_id: OrderId, desk: Desk, withdrawal: Annotated[Withdrawal, Body()] = NO_REASON
) -> SagaStatus:
    """The customer takes the order back: everything done is undone (before confirmation)."""
    return await desk.withdraw(order_id, withdrawal)


class AttentionQuery(WaitingFilter):
    """`GET /attention`'s query: which waiting sagas, and from which page on."""

    cursor: str | None = None


@router.get("/attention", dependencies=[OPERATOR], responses=_refusals(401, 403, 422))
async def waiting_for_an_operator(
    desk: Desk, query: Annotated[AttentionQuery, Query()]
) -> WaitingPage:
    """A page of the sagas waiting for an operator: what each waits on, since when, and holds.

    From the server's records in one listing, asking no saga: it answers as fast with a
    thousand waiting, and while their workers are down. `next_cursor` pages on.
    """
    return await desk.waiting(query, query.cursor)


@router.post("/attention/answers", dependencies=[OPERATOR], responses=_refusals(401, 403, 422))
async def answer_waiting(answer: BulkAnswer, desk: Desk) -> BulkOutcome:
    """One answer to many waiting sagas: those named, or all waiting on a compensation or service.

    Each saga is answered once per `action_id`: post the same action again (it says which
    sagas did not answer) to finish what is left. Marking done needs a reason, which each saga
    records.
    """
    outcome = await desk.answer_waiting(answer)
    log.info(
        "bulk answer",
        action_id=outcome.action_id,
        answered=len(outcome.answered),
        refused=len(outcome.refused),
        unanswered=len(outcome.unanswered),
    )
    return outcome


@router.post(
    "/orders/{order_id}/resolution",
    dependencies=[OPERATOR],
    responses=_refusals(401, 403, 404, 409, 422, 503),
)
async def resolve_compensation(order_id: OrderId, resolution: Resolution, desk: Desk) -> SagaStatus:
    """Retry the compensation the saga waits on, or mark it done by hand with a reason."""
    return await desk.resolve(order_id, resolution)


@router.get("/openapi.json", dependencies=[EITHER], include_in_schema=False)
async def openapi(request: Request) -> dict[str, Any]:
    """This API's OpenAPI document."""
    document: dict[str, Any] = request.app.openapi()
    return document


def create_api_app(client: Client, task_queue: str, tokens: Tokens) -> FastAPI:
    """The Order API over `client`'s sagas, started on `task_queue`, for holders of `tokens`."""
    app = FastAPI(
        title="order-saga Order API",
        version="1",
        description="Place orders, follow their sagas, and answer compensations that need "
        "an operator. Every route needs a bearer token: the shop's or an operator's.",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.middleware("http")(_log_request)
    app.state.desk = OrderDesk(client, task_queue)
    app.state.tokens = tokens
    app.include_router(router)
    for path, page in PAGES.items():
        app.add_api_route(path, _page(page), include_in_schema=False)
    handlers = {
        RequestValidationError: _invalid,
        HTTPException: _http_refusal,
        UnknownOrder: _refusal(404),
        OrderConflict: _refusal(409),
        BadCursor: _refusal(422),
        ActionRefused: _refusal(409),
        WorkflowQueryFailedError: _unreached,
        WorkflowUpdateRPCTimeoutOrCancelledError: _unreached,
        RPCError: _unreached,
    }
    for error, handler in handlers.items():
        app.add_exception_handler(error, handler)
    return app


async def _log_request(
    request: Request, call_next: Callable[[Request], Awaitable[HTTPResponse]]
) -> HTTPResponse:
    """One line per request: its route (not its path: no ids in the route), and the answer.

    Bodies are never logged: a refused card number goes nowhere.
    """
    response = await call_next(request)
    route = getattr(request.scope.get("route"), "path", "(no route)")
    log.info("request", method=request.method, route=route, status=response.status_code)
    return response


def _page(name: str) -> Any:
    """A route serving the page file `name`, read once."""
    content = (files("ordersaga.api") / "pages" / name).read_text()
    for placeholder, names in PAGE_LISTS.items():  # the operator page's filters, from the table
        content = content.replace(placeholder, json.dumps(list(names)))
    media_type = MEDIA_TYPES[PurePath(name).suffix]

    async def serve() -> HTTPResponse:
        return HTTPResponse(content, media_type=media_type)

    return serve


def _problem(
    status: int,
    detail: str,
    problems: list[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = Problem(detail=detail, problems=problems or [])
    return JSONResponse(body.model_dump(), status_code=status, headers=dict(headers or {}))


async def _invalid(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return _problem(422, "the request is not valid", describe_problems(error.errors(), "body"))


async def _http_refusal(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    if error.status_code == 400:  # FastAPI's answer to a body it cannot even decode
        return _problem(422, "the request is not valid", ["order: is not valid JSON text"])
    return _problem(error.status_code, str(error.detail), headers=error.headers)


def _refusal(status: int) -> Any:
    async def refuse(request: Request, error: Exception) -> JSONResponse:
        return _problem(status, str(error))

    return refuse


async def _unreached(request: Request, error: Exception) -> JSONResponse:
    log.warning("saga not reached", path=request.url.path, error=type(error).__name__)
    return _problem(503, "the saga could not be reached: Temporal or its worker did not answer")
