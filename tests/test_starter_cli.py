"""`starter.py` as a user runs it: a separate process talking to the dev server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError

from ordersaga.devserver import DevServer
from tests.orders import make_order
from tests.service_state import Services

STARTER = str(Path(__file__).parent.parent / "starter.py")


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def starter(dev_server: DevServer, services_url: str, saga_task_queue: str) -> StarterRunner:
    return StarterRunner(
        os.environ
        | {
            "TEMPORAL_ADDRESS": dev_server.address,
            "SERVICES_URL": services_url,
            "TASK_QUEUE": saga_task_queue,
        }
    )


class StarterRunner:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    async def __call__(self, *args: str) -> Run:
        # Asynchronous, so that the worker in this process keeps working meanwhile.
        process = await asyncio.create_subprocess_exec(
            sys.executable, STARTER, *args, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        assert process.returncode is not None
        return Run(process.returncode, out.decode(), err.decode())


def new_order_id() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


async def test_place_tokenizes_the_card_and_confirms(
    starter: StarterRunner, services: Services, client: Client
) -> None:
    order_id = new_order_id()

    run = await starter("place", "--order-id", order_id, "--item", "SKU-BOOK:1:1500")

    assert run.code == 0, run.err
    assert f"Order {order_id} confirmed" in run.out
    assert f"/namespaces/default/workflows/order-{order_id}" in run.out
    effects = await services.effects(order_id)
    assert [c["amount"] for c in effects.charges] == [1500]
    history = await client.get_workflow_handle(f"order-{order_id}").fetch_history()
    assert "4242424242424242" not in history.to_json()


async def test_place_twice_says_so_and_starts_no_second_saga(
    starter: StarterRunner, services: Services
) -> None:
    order_id = new_order_id()
    first = await starter("place", "--order-id", order_id, "--item", "SKU-MUG:1:899")
    second = await starter("place", "--order-id", order_id, "--item", "SKU-MUG:1:899")

    assert first.code == 0 and second.code == 0
    assert "already has a saga" in second.out
    assert len((await services.effects(order_id)).charges) == 1


async def test_declined_card_exits_non_zero_with_the_reason(starter: StarterRunner) -> None:
    order_id = new_order_id()
    run = await starter(
        "place", "--order-id", order_id, "--item", "SKU-BOOK:1:1500", "--card", "4000000000000002"
    )

    assert run.code == 1
    assert "PaymentDeclined" in run.out
    assert "state:        Aborted" in run.out
    assert "release_inventory" in run.out


async def test_status_and_cancel_of_an_order(
    starter: StarterRunner, services: Services, client: Client
) -> None:
    order_id = new_order_id()
    await services.set_faults("shipping", latency_ms=3000)
    placed = await starter(
        "place", "--order-id", order_id, "--item", "SKU-BOOK:1:1500", "--no-wait"
    )
    assert placed.code == 0

    in_flight = await starter("status", order_id)
    cancel = await starter("cancel", order_id)
    with pytest.raises(WorkflowFailureError):
        await client.get_workflow_handle(f"order-{order_id}").result()
    final = await starter("status", order_id)

    assert in_flight.code == 0 and "RUNNING" in in_flight.out
    assert cancel.code == 0 and "Cancellation requested" in cancel.out
    assert "CANCELED" in final.out and "state:        Aborted" in final.out
    assert (await services.effects(order_id)).net_charged == 0


async def test_bad_input_is_refused_before_anything_starts(
    starter: StarterRunner, tmp_path: Path, client: Client
) -> None:
    order = make_order().model_dump(mode="json")
    order["items"] = [{"sku": "SKU-BOOK", "quantity": 0, "unit_price": -5}]
    order["currency"] = "XYZ"
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order))

    run = await starter("place", "--file", str(path))

    assert run.code == 2
    assert run.err.splitlines() == [
        "error: items.0.quantity: Input should be greater than or equal to 1",
        "error: items.0.unit_price: Input should be greater than or equal to 1",
        "error: currency: currency XYZ is not supported",
    ]
    workflows = [
        w async for w in client.list_workflows(f"WorkflowId = 'order-{order['order_id']}'")
    ]
    assert workflows == []


async def test_unknown_order_gets_a_clear_error(starter: StarterRunner) -> None:
    run = await starter("status", "no-such-order")

    assert run.code == 1
    assert run.err.strip() == "error: no saga for order no-such-order"
