"""The orders bench and chaos place: a mix of outcomes, placed and awaited through any restart.

Each order's fate is set by the stand-in services' deterministic refusal values (a declined
test token, the sold-out SKU, the unserved postal code), so the mix of outcomes is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from enum import StrEnum

import httpx
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain.ids import workflow_id_for
from domain.order import OrderRequest
from domain.policy import SagaPolicy
from ops.baseline_workflow import BaselineWorkflow
from ops.load import Place, retry_transient
from ordersaga.order_desk import DEMO_ORDER, start_saga
from peer.saga import PeerOrderSaga
from peer.shared import Item, PeerOrder
from workflows import OrderSaga
from workflows.search_attributes import ORDER_STATUS

#: The outcome of a saga that confirmed, and of one that did not (split later by its state).
CONFIRMED = "confirmed"
NOT_CONFIRMED = "not confirmed"


class Kind(StrEnum):
    """What an order is made to do."""

    HAPPY = "happy"
    DECLINED = "declined"
    OUT_OF_STOCK = "out_of_stock"
    UNSERVED = "unserved"


@dataclass(frozen=True)
class Mix:
    """Shares of orders that are refused at each step; the rest confirm.

    Attributes:
        declined: Paid with the always-declined test token (Payment refuses: aborted).
        out_of_stock: For the sold-out SKU (Inventory refuses: failed, nothing to undo).
        unserved: To the unserved postal code (Shipping refuses: aborted).
    """

    declined: float = 0.0
    out_of_stock: float = 0.0
    unserved: float = 0.0

    def kinds(self, count: int, rng: random.Random) -> list[Kind]:
        """`count` kinds in these shares, shuffled."""
        kinds = [Kind.DECLINED] * round(self.declined * count)
        kinds += [Kind.OUT_OF_STOCK] * round(self.out_of_stock * count)
        kinds += [Kind.UNSERVED] * round(self.unserved * count)
        if len(kinds) > count:
            raise ValueError("the shares of refused orders add up to more than 1")
        kinds += [Kind.HAPPY] * (count - len(kinds))
        rng.shuffle(kinds)
        return kinds


def make_order(order_id: str, kind: Kind, policy: SagaPolicy) -> OrderRequest:
    """An order that ends as `kind` says (two catalog items, approved card, served address)."""
    items = [
        {"sku": "SKU-BOOK", "quantity": 1, "unit_price": 1500},
        {"sku": "SKU-MUG", "quantity": 2, "unit_price": 899},
    ]
    if kind is Kind.OUT_OF_STOCK:
        items = [{"sku": "SKU-SOLDOUT", "quantity": 1, "unit_price": 500}]
    address = dict(DEMO_ORDER["shipping_address"])
    if kind is Kind.UNSERVED:
        address["postal_code"] = "00000"
    token = "tok_declined" if kind is Kind.DECLINED else "tok_visa"
    return OrderRequest.model_validate(
        {
            **DEMO_ORDER,
            "order_id": order_id,
            "items": items,
            "shipping_address": address,
            "payment": {"token": token, "last4": "4242"},
            "policy": policy,
        }
    )


def saga_place(
    client: Client, task_queue: str, orders: list[OrderRequest], starter: Client | None = None
) -> Place:
    """Place `orders[i]` as a saga and wait for its end, through server restarts.

    The saga is started with `starter` if given (a client over a link of its own), and its end
    is awaited with `client`.
    """

    async def place(index: int) -> str:
        order = orders[index]

        async def start() -> None:
            # Already started: an earlier attempt did, and its answer was lost in a restart.
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await start_saga(starter or client, order, task_queue)

        await retry_transient(start)
        return await _outcome(client, order.order_id)

    return place


#: Seconds an idle connection to the Order API is kept open: less than the server's keep-alive
#: (uvicorn's 5 s), so that a pause between rounds never leaves a connection the server is
#: closing to be reused (the request would fail with a read error).
API_KEEPALIVE_S = 2.0


def api_client(url: str, token: str) -> httpx.AsyncClient:
    """A client of the Order API at `url` with the bearer `token`, for any number of orders."""
    return httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {token}"},
        limits=httpx.Limits(max_connections=None, keepalive_expiry=API_KEEPALIVE_S),
        timeout=60,
    )


def api_place(api: httpx.AsyncClient, client: Client, orders: list[OrderRequest]) -> Place:
    """Place `orders[i]` through the Order API, and wait for its saga's end.

    `api` calls the API with the shop's token; the end is awaited through `client`, so that
    what the API costs is the placing alone.
    """

    async def place(index: int) -> str:
        order = orders[index]
        answer = await api.post(
            "/orders", content=order.model_dump_json(), headers={"content-type": "application/json"}
        )
        answer.raise_for_status()
        return await _outcome(client, order.order_id)

    return place


async def _outcome(client: Client, order_id: str) -> str:
    """How the saga of `order_id` ended: confirmed or not."""
    handle = client.get_workflow_handle_for(OrderSaga.run, workflow_id_for(order_id))
    try:
        await retry_transient(handle.result)
    except WorkflowFailureError:
        return NOT_CONFIRMED
    return CONFIRMED


def baseline_place(client: Client, task_queue: str, run_id: str) -> Place:
    """Run `BaselineWorkflow` number `i` and wait for its end."""

    async def place(index: int) -> str:
        await client.execute_workflow(
            BaselineWorkflow.run,
            f"{run_id}-{index}",
            id=baseline_id(run_id, index),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        return CONFIRMED

    return place


def peer_order(order: OrderRequest) -> PeerOrder:
    """`order`, as the hand-written peer saga takes it."""
    return PeerOrder(
        order_id=order.order_id,
        customer_id=order.customer_id,
        items=[Item(item.sku, item.quantity, item.unit_price) for item in order.items],
        currency=order.currency,
        address=order.shipping_address.model_dump(),
        card_token=order.payment.token,
    )


def peer_place(client: Client, task_queue: str, orders: list[OrderRequest]) -> Place:
    """Run the peer saga of `orders[i]` and wait for its end; a refusal is an end too.

    `client` must use the SDK's default data converter, as the peer's workers do.
    """

    async def place(index: int) -> str:
        order = orders[index]
        try:
            await client.execute_workflow(
                PeerOrderSaga.run,
                peer_order(order),
                id=peer_workflow_id(order),
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowFailureError:
            return NOT_CONFIRMED
        return CONFIRMED

    return place


def peer_workflow_id(order: OrderRequest) -> str:
    """The workflow id of `order`'s peer saga."""
    return f"peer-{order.order_id}"


def baseline_id(run_id: str, index: int) -> str:
    """The workflow id of baseline workflow `index` of bench run `run_id`."""
    return f"baseline-{run_id}-{index}"


async def final_states(client: Client, order_ids: list[str]) -> dict[str, str]:
    """The state each of these sagas ended in, by order id.

    Read from each saga's `OrderStatus` search attribute, which needs no worker: the workers of
    a version whose sagas have all ended may be gone.
    """
    limit = asyncio.Semaphore(32)

    async def state(order_id: str) -> str:
        handle = client.get_workflow_handle(workflow_id_for(order_id))
        async with limit:
            described = await retry_transient(handle.describe)
        return described.typed_search_attributes.get(ORDER_STATUS) or "unknown"

    return dict(zip(order_ids, await asyncio.gather(*map(state, order_ids)), strict=True))


async def history_length(client: Client, workflow_id: str) -> int:
    """How many events the history of `workflow_id` holds."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return len(history.events)
