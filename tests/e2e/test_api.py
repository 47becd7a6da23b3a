"""The Order API, as `order-saga api` serves it, against the dev server, a worker and the services.

Each refusal is checked to start nothing: no saga exists under the order id afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import sysconfig
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client

from domain.saga import SagaState
from tests.support.api_process import Api
from tests.support.interruptions import slow_shipping
from tests.support.operator_waits import saga_waiting_for_an_operator
from tests.support.orders import DECLINED_TOKEN, order_data
from tests.support.service_state import Services
from tests.support.starter_runner import saga_exists
from workflows.search_attributes import saga_query

#: A test card only this module sends, so that finding it in the API's log is this module's leak.
CARD = "4000056655665556"


async def ended(api: Api, order_id: str) -> dict[str, Any]:
    """The order's status once its saga has ended (polled: the API is what is under test)."""
    async with api.client(api.tokens.shop) as shop:
        while True:
            answer = await shop.get(f"/orders/{order_id}")
            if answer.status_code == 200 and answer.json()["workflow_status"] != "RUNNING":
                return dict(answer.json())
            await asyncio.sleep(0.1)


async def test_an_order_is_placed_once_and_its_saga_followed(
    api: Api, services: Services, client: Client
) -> None:
    order = order_data()
    async with api.client(api.tokens.shop) as shop:
        first = await shop.post("/orders", json=order)
        again = await shop.post("/orders", json=order)

    assert first.status_code == 202
    assert first.headers["Location"] == f"/orders/{order['order_id']}"
    assert first.json() == {
        "order_id": order["order_id"],
        "status_url": f"/orders/{order['order_id']}",
    }
    assert (again.status_code, again.headers["Location"], again.json()) == (
        202,
        first.headers["Location"],
        first.json(),
    )
    status = await ended(api, order["order_id"])
    assert (status["workflow_status"], status["state"]) == ("COMPLETED", "OrderConfirmed")
    assert len((await services.effects(order["order_id"])).charges) == 1  # placed once


async def test_a_reused_id_with_another_body_is_409_and_changes_nothing(api: Api) -> None:
    order = order_data()
    async with api.client(api.tokens.shop) as shop:
        await shop.post("/orders", json=order)
        other = await shop.post("/orders", json=order | {"customer_id": "someone-else"})

    assert other.status_code == 409
    assert (
        other.json()["detail"] == f"order {order['order_id']} was placed before with another body"
    )
    assert (await ended(api, order["order_id"]))["state"] == "OrderConfirmed"


def _with_card(order: dict[str, Any]) -> dict[str, Any]:
    return order | {"payment": {"card_number": CARD, "exp_month": 12, "exp_year": 2030}}


BAD_REQUESTS = {
    "card number": (
        "shop",
        _with_card,
        422,
        "payment: must be a Payment-service token, never a card number",
    ),
    "no items": ("shop", lambda o: o | {"items": []}, 422, "items: must list at least one item"),
    "quantity 0": (
        "shop",
        lambda o: o | {"items": [{"sku": "SKU-BOOK", "quantity": 0, "unit_price": 1500}]},
        422,
        "items.0.quantity: must be at least 1",
    ),
    "no token": (None, lambda o: o, 401, "a valid bearer token is required"),
    "wrong token": ("nobody", lambda o: o, 401, "a valid bearer token is required"),
    "operator placing": ("operator", lambda o: o, 403, "this needs the shop token"),
}


@pytest.mark.parametrize(
    ("who", "change", "code", "says"), BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys()
)
async def test_a_bad_request_gets_its_4xx_naming_the_problem_and_starts_nothing(
    api: Api, client: Client, who: str | None, change: Any, code: int, says: str
) -> None:
    order = change(order_data())
    token = {"shop": api.tokens.shop, "operator": api.tokens.operator}.get(who or "", who)
    async with api.client(token) as caller:
        answer = await caller.post("/orders", json=order)

    assert answer.status_code == code
    assert says in " ".join([answer.json()["detail"], *answer.json()["problems"]])
    assert not await saga_exists(client, order["order_id"])
    assert CARD not in answer.text and CARD not in api.log.read_text()


async def test_a_malformed_body_is_422_naming_the_order(api: Api) -> None:
    async with api.client(api.tokens.shop) as shop:
        answer = await shop.post(
            "/orders", content=b'{"order_id": ', headers={"content-type": "application/json"}
        )

    assert answer.status_code == 422
    assert answer.json()["problems"][0].startswith("order: is not valid JSON")


async def test_every_route_needs_a_token_and_its_role(api: Api) -> None:
    routes = [
        ("GET", "/orders/some-order", "either"),
        ("GET", "/orders", "either"),
        ("GET", "/attention", "operator"),
        ("POST", "/orders", "shop"),
        ("POST", "/orders/some-order/withdraw", "shop"),
        ("POST", "/orders/some-order/resolution", "operator"),
        ("GET", "/openapi.json", "either"),
    ]
    async with (
        api.client(None) as anonymous,
        api.client(api.tokens.shop) as shop,
        api.client(api.tokens.operator) as operator,
    ):
        for method, path, role in routes:
            assert (await anonymous.request(method, path)).status_code == 401, path
            other = {"shop": operator, "operator": shop}.get(role)
            if other is not None:
                assert (await other.request(method, path)).status_code == 403, path


async def test_unknown_orders_are_404(api: Api) -> None:
    async with api.client(api.tokens.shop) as shop, api.client(api.tokens.operator) as operator:
        assert (await shop.get("/orders/no-such-order")).status_code == 404
        assert (await shop.post("/orders/no-such-order/withdraw")).status_code == 404
        resolution = {"action": "retry"}
        answer = await operator.post("/orders/no-such-order/resolution", json=resolution)
        assert answer.status_code == 404


async def test_a_withdrawal_undoes_the_order_and_a_second_is_409(
    api: Api, services_url: str
) -> None:
    order = order_data()
    async with api.client(api.tokens.shop) as shop, slow_shipping(services_url):
        await shop.post("/orders", json=order)
        while "charge_payment" not in (await shop.get(f"/orders/{order['order_id']}")).json().get(
            "steps_done", []
        ):
            await asyncio.sleep(0.05)
        withdrawn = await shop.post(
            f"/orders/{order['order_id']}/withdraw", json={"reason": "changed my mind"}
        )
        again = await shop.post(f"/orders/{order['order_id']}/withdraw")

    assert withdrawn.status_code == 200
    assert withdrawn.json()["state"] == SagaState.WITHDRAWN
    assert withdrawn.json()["compensations_run"][-1] == "release_inventory"
    assert again.status_code == 409
    assert again.json()["detail"] == f"the saga of order {order['order_id']} has ended (FAILED)"


async def test_orders_are_listed_by_state_and_customer(api: Api) -> None:
    customer = f"cust-{order_data()['order_id']}"
    declined = order_data(customer_id=customer, payment={"token": DECLINED_TOKEN, "last4": "0002"})
    confirmed = order_data(customer_id=customer)
    async with api.client(api.tokens.shop) as shop, api.client(api.tokens.operator) as operator:
        for order in (declined, confirmed):
            await shop.post("/orders", json=order)
            await ended(api, order["order_id"])
        mine = await operator.get("/orders", params={"customer": customer})
        aborted = await operator.get("/orders", params={"customer": customer, "status": "Aborted"})
        bogus = await operator.get("/orders", params={"status": "Bogus"})

    assert {o["order_id"] for o in mine.json()} == {declined["order_id"], confirmed["order_id"]}
    [only] = aborted.json()
    assert (only["order_id"], only["failed_step"]) == (declined["order_id"], "charge_payment")
    assert bogus.status_code == 422 and bogus.json()["problems"][0].startswith("query.status:")


async def test_an_operator_sees_a_waiting_saga_and_resolves_it(
    api: Api, client: Client, services: Services, saga_task_queue: str
) -> None:
    saga = await saga_waiting_for_an_operator(client, services, saga_task_queue)
    order_id = saga.id.removeprefix("order-")
    async with api.client(api.tokens.operator) as operator:
        waiting = await operator.get("/attention")
        refused = await operator.post(
            f"/orders/{order_id}/resolution", json={"action": "mark_done"}
        )
        retried = await operator.post(f"/orders/{order_id}/resolution", json={"action": "retry"})
        again = await operator.post(f"/orders/{order_id}/resolution", json={"action": "retry"})

    [mine] = [s for s in waiting.json()["sagas"] if s["order_id"] == order_id]
    assert (mine["compensation"], mine["service"]) == ("release_inventory", "inventory")
    assert refused.status_code == 422  # marking done needs a reason
    assert "reason" in refused.json()["problems"][0]
    assert retried.status_code == 200
    assert again.status_code == 409
    assert (await ended(api, order_id))["state"] == SagaState.ABORTED


async def test_a_saga_whose_worker_is_gone_is_503_not_a_wait(api: Api, client: Client) -> None:
    # A saga on a task queue no worker polls: the API says so within seconds.
    order = order_data()
    saga = await client.start_workflow(
        "OrderSaga", order, id=f"order-{order['order_id']}", task_queue="nobody-polls-this"
    )
    path = f"/orders/{order['order_id']}"
    try:
        async with (
            api.client(api.tokens.shop) as shop,
            api.client(api.tokens.operator) as operator,
        ):
            answers = [
                await shop.get(path),
                await shop.post(f"{path}/withdraw"),
                await operator.post(f"{path}/resolution", json={"action": "retry"}),
            ]
    finally:  # gone, so that no later test (or schemathesis, which lists orders) finds it
        await client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=saga.id),
            )
        )
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert "did not answer" in answer.json()["detail"]


#: What schemathesis checks of every answer: no 5xx, every status and body as documented, bad
#: input refused, no route open without its token. (`positive_data_acceptance` is left out:
#: the API refuses more than a JSON Schema can say, such as a currency the shop does not take.)
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,negative_data_rejection,ignored_auth"
)


async def test_schemathesis_finds_no_breach_and_no_saga_starts_from_bad_input(
    api: Api, client: Client, tmp_path: Path
) -> None:
    started = datetime.now(UTC)
    for token in (api.tokens.shop, api.tokens.operator):
        run = await asyncio.create_subprocess_exec(
            str(Path(sysconfig.get_path("scripts")) / "schemathesis"), "run",
            f"{api.url}/openapi.json", "--header", f"Authorization: Bearer {token}",
            "--checks", CHECKS, "--max-examples", "25", "--workers", "1", "--seed", "1",
            "--generation-database", "none", "--no-color",
            cwd=tmp_path, env=os.environ | {"HYPOTHESIS_STORAGE_DIRECTORY": str(tmp_path)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output = (await run.communicate())[0].decode()
        assert run.returncode == 0, output[-4000:]
    since = started.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    refused = saga_query(SagaState.REFUSED.value) + f" AND StartTime > '{since}'"
    assert [w.id async for w in client.list_workflows(refused)] == []


async def test_every_documented_answer_was_given(api: Api) -> None:
    # Last in the module: the requests of its tests and of schemathesis, from the API's log.
    async with api.client(api.tokens.operator) as operator:
        document = (await operator.get("/openapi.json")).json()
    documented = {
        (method.upper(), route, int(code))
        for route, operations in document["paths"].items()
        for method, operation in operations.items()
        for code in operation["responses"]
    }
    lines = [json.loads(line) for line in api.log.read_text().splitlines() if line[:1] == "{"]
    seen = {
        (line["method"], line["route"], line["status"])
        for line in lines
        if line["event"] == "request"
    }
    assert documented - seen == set()
