"""Bad input is refused with one plain line per problem, naming the field, and never a value.

Beyond the models' own messages (tests/unit/test_order_input.py): the starter CLI (exit code 2
and nothing started), and a raw payload reaching the workflow (it fails at once, not forever).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from infra.codec import UNENCRYPTED_PROBLEM
from infra.devserver import DevServer
from tests.support.order_input import (
    CARD,
    COUNTRY,
    CURRENCY,
    DUPLICATE,
    IDENTIFIER,
    LUHN,
    NOT_A_CARD,
    POSTAL_CODE,
    PRICE,
    QUANTITY,
    by_card,
    item,
    order,
)
from tests.support.starter_runner import StarterRunner, new_order_id, saga_exists

# --- The starter CLI: refused before anything starts --------------------------------------------


def file_lines(path: str) -> dict[str, tuple[str, list[str]]]:
    """`--file` cases: (file content, expected stderr lines)."""
    bad = order(order_id="{id}", items__0__quantity=0, items__1__unit_price=-5, currency="XYZ")
    return {
        "problems": (
            json.dumps(bad),
            [
                "error: items.0.quantity: must be at least 1",
                f"error: items.1.unit_price: {PRICE}",
                f"error: currency: {CURRENCY}",
            ],
        ),
        "card by file": (
            json.dumps(by_card(card_number="4242424242424241") | {"order_id": "{id}"}),
            [f"error: payment.card_number: {LUHN}"],
        ),
        "not JSON": (
            "order_id: {id}\n",
            [f"error: file: {path} is not JSON (Expecting value at line 1 column 1)"],
        ),
        "JSON array": (
            json.dumps([order(order_id="{id}")]),
            [f"error: file: {path} must hold one order as a JSON object, not an array"],
        ),
    }


@pytest.mark.parametrize("case", ["problems", "card by file", "not JSON", "JSON array"])
async def test_a_bad_order_file_is_refused_before_anything_starts(
    case: str, starter: StarterRunner, client: Client, tmp_path: Path
) -> None:
    order_id = new_order_id()
    path = tmp_path / "order.json"
    content, expected = file_lines(str(path))[case]
    path.write_text(content.replace("{id}", order_id))

    run = await starter("place", "--file", str(path))

    assert (run.code, run.err.splitlines(), run.out) == (2, expected, "")
    assert not await saga_exists(client, order_id)


async def test_an_unreadable_order_file_is_one_line(starter: StarterRunner, tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"

    run = await starter("place", "--file", str(missing))

    assert (run.code, run.err.splitlines()) == (
        2,
        [f"error: file: cannot read {missing}: No such file or directory"],
    )


FLAG_CASES: dict[str, tuple[list[str], list[str]]] = {
    "no items": ([], ["error: items: must list at least one item"]),
    "several problems": (
        [
            "--item", "SKU-BOOK:0:-5", "--item", "SKU-MUG:1.5:899",
            "--currency", "XYZ", "--postal-code", "#1", "--card", "4242424242424241",
        ],
        [
            "error: items.0.quantity: must be at least 1",
            f"error: items.0.unit_price: {PRICE}",
            f"error: items.1.quantity: {QUANTITY}",
            f"error: currency: {CURRENCY}",
            f"error: shipping_address.postal_code: {POSTAL_CODE}",
            f"error: payment.card_number: {LUHN}",
        ],
    ),
    "duplicate sku": (
        ["--item", "SKU-BOOK:1:1500", "--item", "SKU-MUG:1:899", "--item", "SKU-BOOK:2:1500"],
        [f"error: items: items.0 and items.2 {DUPLICATE}"],
    ),
    "item not SKU:QTY:PRICE": (
        ["--item", "SKU-BOOK"],
        [f"error: items.0.quantity: {QUANTITY}", f"error: items.0.unit_price: {PRICE}"],
    ),
    "bad token": (
        ["--item", "SKU-BOOK:1:1500", "--token", "tok_visa", "--last4", "42"],
        ["error: payment.last4: must be the last four digits of the card"],
    ),
}  # fmt: skip


@pytest.mark.parametrize(("flags", "expected"), FLAG_CASES.values(), ids=FLAG_CASES.keys())
async def test_bad_flags_are_refused_before_anything_starts(
    flags: list[str], expected: list[str], starter: StarterRunner, client: Client
) -> None:
    order_id = new_order_id()

    run = await starter("place", "--order-id", order_id, *flags)

    assert (run.code, run.err.splitlines(), run.out) == (2, expected, "")
    assert not await saga_exists(client, order_id)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["retry-compensation"],
            "error: name the orders, or choose them with --waiting-on or --waiting-service",
        ),
        (["retry-compensation", "--waiting-on", "nope"], "error: --waiting-on: must be one of"),
        (["mark-done", "--waiting-service", "shipping", "--reason", ""], "error: order: say why"),
    ],
    ids=["no orders", "not a compensation", "no reason"],
)
async def test_a_bad_answer_is_refused_before_temporal_is_asked(
    argv: list[str], expected: str, starter: StarterRunner
) -> None:
    nowhere = StarterRunner(starter.env | {"TEMPORAL_ADDRESS": "127.0.0.1:1"})

    run = await nowhere(*argv)

    assert run.code == 2 and run.err.startswith(expected), run.err
    assert len(run.err.splitlines()) == 1 and run.out == ""


async def test_a_bad_order_id_flag_is_refused(starter: StarterRunner) -> None:
    run = await starter("place", "--order-id", "no spaces please", "--item", "SKU-BOOK:1:1")

    assert (run.code, run.err.splitlines()) == (2, [f"error: order_id: {IDENTIFIER}"])


# --- A raw payload that reaches the workflow another way ----------------------------------------


async def start_raw(
    client: Client, task_queue: str, payload: dict[str, Any], *, sender: Client | None = None
) -> ApplicationError:
    """Start "OrderSaga" with a plain dict, as `temporal workflow start --input` does (through
    `sender` if given, else `client`); return the failure it ends with, read through `client`,
    after checking that it failed at once: no workflow task failed (which would be retried
    forever) and no step ran."""
    workflow_id = f"order-{payload['order_id']}"
    await (sender or client).start_workflow(
        "OrderSaga", payload, id=workflow_id, task_queue=task_queue
    )
    handle = client.get_workflow_handle(workflow_id)
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), timeout=10)
    events = [event.event_type for event in (await handle.fetch_history()).events]
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in events
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in events
    assert events[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "OrderRefused"
    assert "\n" not in cause.message
    return cause


RAW_CASES = {
    "no items": (order(items=[]), "items: must list at least one item"),
    "quantity 0": (order(items__0__quantity=0), "items.0.quantity: must be at least 1"),
    "quantity 1e3": (order(items__0__quantity=1e3), f"items.0.quantity: {QUANTITY}"),
    "price 15.00": (order(items__0__unit_price=15.0), f"items.0.unit_price: {PRICE}"),
    "unknown country": (
        order(shipping_address__country="ZZ"),
        f"shipping_address.country: {COUNTRY}",
    ),
    "duplicate sku": (
        order(items=[item("SKU-BOOK"), item("SKU-BOOK")]),
        f"items: items.0 and items.1 {DUPLICATE}",
    ),
}


@pytest.mark.parametrize(("payload", "names"), RAW_CASES.values(), ids=RAW_CASES.keys())
async def test_a_raw_bad_payload_fails_the_workflow_at_once(
    payload: dict[str, Any], names: str, client: Client, saga_task_queue: str
) -> None:
    payload = payload | {"order_id": f"raw-{uuid.uuid4().hex[:10]}"}

    failure = await start_raw(client, saga_task_queue, payload)

    assert names in failure.message


async def test_a_raw_card_number_is_refused_and_not_repeated(
    client: Client, saga_task_queue: str
) -> None:
    payload = by_card() | {"order_id": f"raw-{uuid.uuid4().hex[:10]}"}

    failure = await start_raw(client, saga_task_queue, payload)

    assert f"payment: {NOT_A_CARD}" in failure.message
    history = await client.get_workflow_handle(f"order-{payload['order_id']}").fetch_history()
    failed = history.events[-1].workflow_execution_failed_event_attributes
    assert CARD not in str(failed)


async def test_an_unencrypted_order_is_refused_at_once_where_encryption_is_on(
    client: Client, dev_server: DevServer, saga_task_queue: str
) -> None:
    # As `temporal workflow start` without the codec flags sends it, to encrypting workers.
    plain = await Client.connect(dev_server.address, data_converter=pydantic_data_converter)
    payload = order() | {"order_id": f"raw-{uuid.uuid4().hex[:10]}"}

    failure = await start_raw(client, saga_task_queue, payload, sender=plain)

    assert f"Order {payload['order_id']} refused: {UNENCRYPTED_PROBLEM}" in failure.message


async def test_status_shows_why_a_saga_was_refused(
    client: Client, saga_task_queue: str, starter: StarterRunner
) -> None:
    payload = order(items=[]) | {"order_id": f"raw-{uuid.uuid4().hex[:10]}"}
    await start_raw(client, saga_task_queue, payload)

    run = await starter("status", payload["order_id"])

    assert run.code == 0, run.err
    assert "state:        Refused" in run.out
    assert "reason:       OrderRefused: items: must list at least one item" in run.out
