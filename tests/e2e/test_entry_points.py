"""Entry points that cannot be misused: each trap a new user fell into, closed.

A start that would store an order unencrypted, an order id that disagrees with its workflow id,
a refused input left looking `Started`, and infrastructure that is not there: each is refused
in one line, with exit code 2 where nothing was done, and nothing is started.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError

from infra.keyring import new_key_entry
from tests.support.orders import order_data
from tests.support.paths import ROOT
from tests.support.service_state import Services
from tests.support.starter_runner import (
    StarterRunner,
    new_order_id,
    one_line,
    run_python,
    saga_exists,
)
from workflows.search_attributes import ORDER_STATUS

ITEM = ("--item", "SKU-MUG:1:899")


def without_keys(runner: StarterRunner, **env: str) -> StarterRunner:
    return StarterRunner({k: v for k, v in runner.env.items() if k != "CODEC_KEY_FILE"} | env)


async def test_a_start_without_the_namespaces_key_is_refused_and_starts_nothing(
    starter: StarterRunner, client: Client, services: Services
) -> None:
    assert (await starter("place", "--order-id", new_order_id(), *ITEM)).code == 0
    order_id = new_order_id()

    run = await without_keys(starter)("place", "--order-id", order_id, *ITEM)

    assert run.code == 2
    assert one_line(run).startswith(
        "error: the sagas in namespace default are encrypted (key 'test-k1') and no key is set: "
        "set CODEC_KEY_FILE"
    )
    assert not await saga_exists(client, order_id)
    assert (await services.effects(order_id)).charges == []


async def test_a_start_with_another_key_is_refused(starter: StarterRunner, client: Client) -> None:
    assert (await starter("place", "--order-id", new_order_id(), *ITEM)).code == 0
    order_id = new_order_id()
    other = without_keys(starter, CODEC_KEYS=new_key_entry("other"))

    run = await other("place", "--order-id", order_id, *ITEM)

    assert run.code == 2
    assert "encrypted with key 'test-k1', which CODEC_KEY_FILE / CODEC_KEYS do not hold" in (
        one_line(run)
    )
    assert not await saga_exists(client, order_id)


async def test_a_worker_without_the_key_does_not_start(starter: StarterRunner) -> None:
    assert (await starter("place", "--order-id", new_order_id(), *ITEM)).code == 0
    env = without_keys(starter).env | {"TASK_QUEUE": f"nobody-{uuid.uuid4()}"}

    run = await run_python(env, str(ROOT / "worker.py"))

    assert run.code == 2
    assert one_line(run).endswith("; the worker did not start")


async def test_an_unreachable_temporal_is_one_line(
    starter: StarterRunner, closed_port: int
) -> None:
    nowhere = {"TEMPORAL_ADDRESS": f"127.0.0.1:{closed_port}"}
    for run in (
        await StarterRunner(starter.env | nowhere)("status", "A1"),
        await run_python(starter.env | nowhere, str(ROOT / "worker.py")),
    ):
        assert run.code == 2
        assert one_line(run).startswith(
            f"error: cannot reach Temporal at 127.0.0.1:{closed_port} ("
        )
        assert "tonic" not in run.err


async def test_a_worker_whose_metrics_port_is_taken_says_so(
    starter: StarterRunner, taken_port: int
) -> None:
    env = starter.env | {"METRICS_ADDRESS": f"127.0.0.1:{taken_port}"}

    run = await run_python(env, str(ROOT / "worker.py"))

    assert run.code == 2
    expected = f"error: cannot serve metrics on METRICS_ADDRESS 127.0.0.1:{taken_port} ("
    assert one_line(run).startswith(expected)


async def test_a_second_demo_says_which_port_and_writes_nothing(
    starter: StarterRunner, taken_port: int, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    cli = "from ops.cli import main; main()"
    env = starter.env | {"TEMPORAL_PORT": str(taken_port), "DATA_DIR": str(data)}

    run = await run_python(env, "-c", cli, "demo", "--exit")

    assert run.code == 2
    assert one_line(run).startswith(f"error: port {taken_port} (Temporal frontend, TEMPORAL_PORT")
    assert not data.exists()


async def test_an_order_id_other_than_the_workflow_ids_is_refused_and_says_so(
    client: Client, saga_task_queue: str, services: Services, starter: StarterRunner
) -> None:
    workflow_order, payload_order = new_order_id(), new_order_id()
    handle = await client.start_workflow(
        "OrderSaga",
        order_data(order_id=payload_order),
        id=f"order-{workflow_order}",
        task_queue=saga_task_queue,
        search_attributes=TypedSearchAttributes([SearchAttributePair(ORDER_STATUS, "Started")]),
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "OrderRefused"
    assert cause.message == (
        f"Order {workflow_order} refused: order_id: must be {workflow_order}, as its workflow id "
        "says; nothing was done"
    )
    description = await handle.describe()
    assert description.typed_search_attributes.get(ORDER_STATUS) == "Refused"
    for order_id in (workflow_order, payload_order):
        assert (await services.effects(order_id)).charges == []
    status = await starter("status", workflow_order)
    assert status.code == 0, status.err
    assert "state:        Refused" in status.out


async def test_a_card_number_given_raw_leaves_the_saga_refused(
    client: Client, saga_task_queue: str
) -> None:
    order_id = new_order_id()
    payload = order_data(order_id=order_id) | {
        "payment": {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2030}
    }
    handle = await client.start_workflow(
        "OrderSaga",
        payload,
        id=f"order-{order_id}",
        task_queue=saga_task_queue,
        search_attributes=TypedSearchAttributes([SearchAttributePair(ORDER_STATUS, "Started")]),
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()

    assert isinstance(failure.value.cause, ApplicationError)
    assert "\n" not in failure.value.cause.message
    assert (await handle.describe()).typed_search_attributes.get(ORDER_STATUS) == "Refused"
