"""An operator's bad day: a thousand sagas waiting on Inventory, listed and answered in bulk.

On a dev server of its own, with the Order API as `order-saga api` runs it: the waiting sagas
are listed from the server's records in pages, filtered, and still listed with their worker
stopped; one bulk retry answers them all, the same action run again answers none twice, and
an action cut short mid-way and run again finishes what is left.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from domain.ids import order_id_of
from domain.saga import OperatorAction, Resolution, SagaState
from infra.devserver import DevServer, dev_server_in
from infra.temporal import connect
from ops.outage import InventoryOutage, Saga, outage_worker, strand, waiting_count
from ordersaga.order_desk import BulkAnswer, BulkOutcome, OrderDesk, WaitingFilter
from tests.support.api_process import Api, running_api
from tests.support.starter_runner import StarterRunner
from workflows import OrderSaga

TASK_QUEUE = "operator-bad-day"

#: The sagas stranded: the issue's thousand.
STRANDED = 1000


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    async with dev_server_in(tmp_path_factory.mktemp("bad-day")) as server:
        yield server


@pytest.fixture(scope="module")
async def own_client(server: DevServer) -> Client:
    return await connect(server.address, "default")


@pytest.fixture(scope="module")
async def own_api(
    server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    async with running_api(server.address, TASK_QUEUE, tmp_path_factory.mktemp("api")) as api:
        yield api


@pytest.fixture(scope="module")
async def stranded(own_client: Client) -> tuple[InventoryOutage, list[Saga]]:
    """A thousand sagas waiting on `release_inventory`; their worker stopped since."""
    outage = InventoryOutage()
    async with outage_worker(own_client, TASK_QUEUE, outage):
        sagas = await strand(own_client, TASK_QUEUE, STRANDED)
    return outage, sagas


async def test_the_waiting_are_listed_in_pages_from_the_servers_records_with_no_worker(
    stranded: tuple[InventoryOutage, list[Saga]], own_api: Api, server: DevServer
) -> None:
    _, sagas = stranded
    ids = {order_id_of(saga.id) for saga in sagas}
    async with own_api.client(own_api.tokens.operator) as operator:
        whole = (await operator.get("/attention", params={"limit": 1000})).json()
        seen, pages, cursor = [], 0, None
        while pages == 0 or cursor:
            params: dict[str, str | int] = {"compensation": "release_inventory", "limit": 300}
            if cursor:
                params["cursor"] = cursor
            page = (await operator.get("/attention", params=params)).json()
            seen += [saga["order_id"] for saga in page["sagas"]]
            cursor, pages = page["next_cursor"], pages + 1
        elsewhere = (await operator.get("/attention", params={"service": "payment"})).json()
        bad_service = await operator.get("/attention", params={"service": "nowhere"})
        bad_cursor = await operator.get("/attention", params={"cursor": "not a cursor"})

    assert whole["total"] == STRANDED and {s["order_id"] for s in whole["sagas"]} == ids
    first = whole["sagas"][0]
    assert (first["compensation"], first["service"], first["step"]) == (
        "release_inventory", "inventory", "reserve_inventory",
    )  # fmt: skip
    assert first["holds"] == {"reserve_inventory": f"reserve_inventory-{first['order_id']}"}
    assert first["charged"] is None  # the card was declined: no money is held
    assert first["held"] == f"reserve_inventory reserve_inventory-{first['order_id']}"
    assert "ServiceUnavailable" in first["reason"]
    assert (pages, len(seen), set(seen)) == (4, STRANDED, ids)
    assert (elsewhere["total"], elsewhere["sagas"]) == (0, [])
    assert bad_service.status_code == 422 and "service: must be one of" in bad_service.text
    assert bad_cursor.status_code == 422 and "cursor: must be the next_cursor" in bad_cursor.text

    # The starter, too, lists them and reads one saga's record while no worker answers.
    starter = StarterRunner(
        os.environ | {"TEMPORAL_ADDRESS": server.address, "TASK_QUEUE": TASK_QUEUE}
    )
    listed, one = await asyncio.gather(starter("attention"), starter("status", first["order_id"]))
    assert listed.code == 0, listed.err
    assert f"{STRANDED} order(s) need attention." in listed.out
    assert one.code == 0, one.err
    assert "its worker did not answer within 5 s; the server's records:" in one.out
    assert "needs attention: release_inventory (inventory) failed 1 times" in one.out


async def test_one_bulk_retry_answers_each_saga_once_even_run_again(
    stranded: tuple[InventoryOutage, list[Saga]], own_api: Api, own_client: Client
) -> None:
    outage, sagas = stranded
    async with (
        outage_worker(own_client, TASK_QUEUE, outage),
        own_api.client(own_api.tokens.operator) as operator,
    ):
        # Inventory still down: each saga retries once, fails, and waits again.
        first = await bulk_retry(operator, "a1")
        await settled(own_client, outage, releases_each=2)
        again = await bulk_retry(operator, "a1")
        states = await asyncio.gather(*(saga.query(OrderSaga.status) for saga in sagas))
        tried_after_again = set(outage.releases.values())

        # Inventory back: an action cut short half-way, then run again, resumes every saga.
        outage.down = False
        desk = OrderDesk(own_client, TASK_QUEUE)
        answer = BulkAnswer(
            resolution=Resolution(action=OperatorAction.RETRY),
            filters=WaitingFilter(compensation="release_inventory"),
            action_id="a2",
        )
        half = asyncio.Event()

        def note(outcome: BulkOutcome) -> None:
            if len(outcome.answered) >= outcome.total // 2:
                half.set()

        cut_short = asyncio.create_task(desk.answer_waiting(answer, progress=note))
        await half.wait()
        cut_short.cancel()  # as a crash of the process running it would
        with pytest.raises(asyncio.CancelledError):
            await cut_short
        rest = await bulk_retry(operator, "a2")
        ends = await asyncio.gather(*(ended(saga) for saga in sagas))

    ids = {order_id_of(saga.id) for saga in sagas}
    assert answered(first) == ids
    # The same action again: each saga is answered once, so none retries a second time.
    assert answered(again) == ids
    assert {status.state for status in states} == {SagaState.NEEDS_ATTENTION}
    assert tried_after_again == {2}
    assert not rest[-1]["unanswered"]
    assert set(ends) == {SagaState.ABORTED}
    assert set(outage.releases.values()) == {3}  # none answered twice by a2 either


async def bulk_retry(operator: httpx.AsyncClient, action_id: str) -> list[dict[str, Any]]:
    """`POST /attention/answers`: retry every saga waiting on `release_inventory`, the action
    posted again while some sagas did not answer in time, as an operator would; each outcome."""
    retry = {"resolution": {"action": "retry"}, "filters": {"compensation": "release_inventory"}}
    outcomes: list[dict[str, Any]] = []
    while not outcomes or outcomes[-1]["unanswered"]:
        assert len(outcomes) < 5, outcomes[-1]["unanswered"]
        posted = await operator.post(
            "/attention/answers", json=retry | {"action_id": action_id}, timeout=300
        )
        assert posted.status_code == 200, posted.text
        outcomes.append(posted.json())
    return outcomes


def answered(outcomes: list[dict[str, Any]]) -> set[str]:
    return {order_id for outcome in outcomes for order_id in outcome["answered"]}


async def settled(client: Client, outage: InventoryOutage, releases_each: int) -> None:
    """Return once each saga has tried its release `releases_each` times and waits again."""
    async with asyncio.timeout(120):
        await outage.released(releases_each * STRANDED)
    await waiting_count(client, STRANDED)


async def ended(saga: Saga) -> str:
    """The state `saga` ended in, as its failure says (a query would replay a thousand)."""
    with pytest.raises(WorkflowFailureError) as failure:
        await saga.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    state: str = cause.details[0]["state"]
    return state


def test_a_bulk_answer_names_its_sagas() -> None:
    with pytest.raises(ValueError, match="order_ids: name the sagas, or filter them"):
        BulkAnswer(resolution=Resolution(action=OperatorAction.RETRY))
