"""Bad input is refused with one plain line per problem, naming the field, and never a value.

Three levels: the models' own messages (`describe_errors`), the starter CLI (exit code 2 and
nothing started), and a raw payload reaching the workflow (it fails at once, not forever).
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from domain.order import OrderForm, OrderRequest
from domain.problems import describe_errors
from ordersaga.codec import UNENCRYPTED_PROBLEM
from ordersaga.devserver import DevServer
from tests.orders import order_data
from tests.starter_runner import StarterRunner, new_order_id, saga_exists

CARD = "4242424242424242"

#: A valid order as the saga takes it (paid by token).
VALID: dict[str, Any] = order_data(
    order_id="A1",
    shipping_address={
        "name": "Ada Lovelace",
        "line1": "12 St James's Square",
        "city": "London",
        "postal_code": "SW1Y 4JH",
        "country": "GB",
    },
)

IDENTIFIER = "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
QUANTITY = "must be a whole number from 1 to 1000"
PRICE = "must be a positive whole number of minor units (cents), such as 1500 for 15.00"
CURRENCY = (
    "must be the ISO 4217 code of a currency the shop accepts: AUD, BRL, CAD, CHF, CNY, DKK, EUR,"
    " GBP, INR, JPY, MXN, NOK, NZD, PLN, SEK, SGD, USD, ZAR"
)
COUNTRY = "must be a two-letter ISO 3166 country code such as US"
POSTAL_CODE = "must be 2 to 12 letters, digits, spaces or '-'"
TEXT = "must be text of at most 100 characters"
LUHN = "is not a valid card number (wrong check digit: mistyped?)"
CARD_NUMBER = "must be a card number of 12 to 19 digits"
NOT_A_CARD = (
    "must be a Payment-service token, never a card number: exchange the card for a token first"
    " (starter.py place does)"
)
DUPLICATE = "have the same SKU (list each SKU once, with its total quantity)"


def order(**changes: Any) -> dict[str, Any]:
    """VALID with fields replaced: `a__b__0__c=x` reaches into nested ones, `None` removes."""
    data = copy.deepcopy(VALID)
    for path, value in changes.items():
        *parents, last = (int(p) if p.isdigit() else p for p in path.split("__"))
        target: Any = data
        for part in parents:
            target = target[part]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return data


def by_card(**card: Any) -> dict[str, Any]:
    return order(payment={"card_number": CARD, "exp_month": 12, "exp_year": 2030} | card)


def item(sku: str, quantity: int = 1) -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity, "unit_price": 100}


def problems(model: type[BaseModel], data: Any) -> list[str]:
    validate: Callable[[Any], Any] = (
        model.model_validate_json if isinstance(data, bytes) else model.model_validate
    )
    with pytest.raises(ValidationError) as error:
        validate(data)
    return describe_errors(error.value)


# (model, input, the lines describe_errors returns). OrderRequest is the saga's input (token
# only); OrderForm is what the starter takes (card or token).
CASES: dict[str, tuple[type[BaseModel], Any, list[str]]] = {
    # No items, too many, not a list.
    "no items": (OrderRequest, order(items=[]), ["items: must list at least one item"]),
    "items missing": (OrderRequest, order(items=None), ["items: is required"]),
    "51 items": (
        OrderRequest,
        order(items=[item(f"SKU-{n}") for n in range(51)]),
        ["items: must list at most 50 items"],
    ),
    "items not a list": (OrderRequest, order(items="SKU-BOOK"), ["items: must be a list"]),
    # Quantity.
    "quantity 0": (
        OrderRequest,
        order(items__0__quantity=0),
        ["items.0.quantity: must be at least 1"],
    ),
    "quantity negative": (
        OrderRequest,
        order(items__1__quantity=-3),
        ["items.1.quantity: must be at least 1"],
    ),
    "quantity 1001": (
        OrderRequest,
        order(items__0__quantity=1001),
        ["items.0.quantity: must be at most 1000 per item"],
    ),
    "quantity absurd": (
        OrderRequest,
        order(items__0__quantity=10**30),
        ["items.0.quantity: must be at most 1000 per item"],
    ),
    "quantity fractional": (
        OrderRequest,
        order(items__0__quantity=1.5),
        [f"items.0.quantity: {QUANTITY}"],
    ),
    "quantity not a number": (
        OrderRequest,
        order(items__0__quantity="two"),
        [f"items.0.quantity: {QUANTITY}"],
    ),
    # Price.
    "price 0": (OrderRequest, order(items__0__unit_price=0), [f"items.0.unit_price: {PRICE}"]),
    "price negative": (
        OrderRequest,
        order(items__0__unit_price=-5),
        [f"items.0.unit_price: {PRICE}"],
    ),
    "price in units, not cents": (
        OrderRequest,
        order(items__0__unit_price=14.99),
        [f"items.0.unit_price: {PRICE}"],
    ),
    "price absurd": (
        OrderRequest,
        order(items__0__unit_price=10**10),
        ["items.0.unit_price: must be at most 10000000 minor units (cents)"],
    ),
    # Currency.
    "unknown currency": (OrderRequest, order(currency="XYZ"), [f"currency: {CURRENCY}"]),
    "currency a word": (OrderRequest, order(currency="dollars"), [f"currency: {CURRENCY}"]),
    "currency a number": (OrderRequest, order(currency=840), [f"currency: {CURRENCY}"]),
    # Card numbers (the starter's form).
    "card fails Luhn": (
        OrderForm,
        by_card(card_number="4242424242424241"),
        [f"payment.card_number: {LUHN}"],
    ),
    "card with letters": (
        OrderForm,
        by_card(card_number="4242-4242-4242-424X"),
        [f"payment.card_number: {CARD_NUMBER}"],
    ),
    "card too short": (
        OrderForm,
        by_card(card_number="4242"),
        [f"payment.card_number: {CARD_NUMBER}"],
    ),
    "card wrong length for brand": (
        OrderForm,
        by_card(card_number="42424242424242"),
        ["payment.card_number: has the wrong number of digits for its card brand"],
    ),
    "card expiry": (
        OrderForm,
        by_card(exp_month=13, exp_year=30),
        [
            "payment.exp_month: must be a month from 1 to 12",
            "payment.exp_year: must be a four-digit year from 2000 to 2100",
        ],
    ),
    "payment neither card nor token": (
        OrderForm,
        order(payment={"number": CARD}),
        [
            "payment: must be a card (card_number, exp_month, exp_year) or a Payment-service"
            " token (token, last4)"
        ],
    ),
    "card number given to the saga": (
        OrderRequest,
        by_card(),
        [f"payment: {NOT_A_CARD}"],
    ),
    "malformed token": (
        OrderRequest,
        order(payment={"token": "visa", "last4": "42"}),
        [
            "payment.token: must be a Payment-service token: 'tok_' then 1 to 64 letters,"
            " digits or '_'",
            "payment.last4: must be the last four digits of the card",
        ],
    ),
    # Address.
    "address field missing": (
        OrderRequest,
        order(shipping_address__city=None),
        ["shipping_address.city: is required"],
    ),
    "address fields missing": (
        OrderRequest,
        order(shipping_address={"name": "Ada"}),
        [
            "shipping_address.line1: is required",
            "shipping_address.city: is required",
            "shipping_address.postal_code: is required",
            "shipping_address.country: is required",
        ],
    ),
    "no address": (OrderRequest, order(shipping_address=None), ["shipping_address: is required"]),
    "blank name": (
        OrderRequest,
        order(shipping_address__name="   "),
        ["shipping_address.name: must not be empty"],
    ),
    "unknown country": (
        OrderRequest,
        order(shipping_address__country="ZZ"),
        [f"shipping_address.country: {COUNTRY}"],
    ),
    "country alpha-3": (
        OrderRequest,
        order(shipping_address__country="USA"),
        [f"shipping_address.country: {COUNTRY}"],
    ),
    "bad postal code": (
        OrderRequest,
        order(shipping_address__postal_code="12345!"),
        [f"shipping_address.postal_code: {POSTAL_CODE}"],
    ),
    # Oversized strings.
    "long name": (
        OrderRequest,
        order(shipping_address__name="A" * 101),
        [f"shipping_address.name: {TEXT}"],
    ),
    "huge line2": (
        OrderRequest,
        order(shipping_address__line2="B" * 100_000),
        [f"shipping_address.line2: {TEXT}"],
    ),
    "long postal code": (
        OrderRequest,
        order(shipping_address__postal_code="1" * 13),
        [f"shipping_address.postal_code: {POSTAL_CODE}"],
    ),
    "long order id": (OrderRequest, order(order_id="A" * 65), [f"order_id: {IDENTIFIER}"]),
    "long sku": (OrderRequest, order(items__0__sku="S" * 65), [f"items.0.sku: {IDENTIFIER}"]),
    "order id with spaces": (OrderRequest, order(order_id="A 1"), [f"order_id: {IDENTIFIER}"]),
    "empty customer id": (OrderRequest, order(customer_id=""), [f"customer_id: {IDENTIFIER}"]),
    # Duplicate SKUs: named by position, not by value.
    "duplicate sku": (
        OrderRequest,
        order(items=[item("SKU-BOOK"), item("SKU-MUG"), item("SKU-BOOK", 2)]),
        [f"items: items.0 and items.2 {DUPLICATE}"],
    ),
    "duplicate skus": (
        OrderRequest,
        order(items=[item("A"), item("B"), item("A"), item("B"), item("A")]),
        [f"items: items.0, items.2 and items.4; items.1 and items.3 {DUPLICATE}"],
    ),
    # Not an order at all.
    "unknown field": (OrderRequest, order(coupon="FREE"), ["coupon: is not a known field"]),
    "not JSON": (
        OrderRequest,
        b"{not json",
        ["order: is not valid JSON (key must be a string at line 1 column 2)"],
    ),
    "truncated JSON": (
        OrderRequest,
        json.dumps(VALID)[:40].encode(),
        ["order: is not valid JSON (EOF while parsing a string at line 1 column 40)"],
    ),
    "JSON array": (OrderRequest, b"[]", ["order: must be a JSON object"]),
    "JSON string": (OrderForm, b'"A1"', ["order: must be a JSON object"]),
    "address not an object": (
        OrderRequest,
        order(shipping_address="London"),
        ["shipping_address: must be an object"],
    ),
    # Several problems: one line each, in the order of the fields.
    "several problems": (
        OrderRequest,
        order(items__0__quantity=0, items__1__unit_price=-1, currency="XYZ"),
        [
            "items.0.quantity: must be at least 1",
            f"items.1.unit_price: {PRICE}",
            f"currency: {CURRENCY}",
        ],
    ),
}


@pytest.mark.parametrize(("model", "data", "expected"), CASES.values(), ids=CASES.keys())
def test_each_problem_is_one_line_naming_the_field(
    model: type[BaseModel], data: Any, expected: list[str]
) -> None:
    assert problems(model, data) == expected


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (-1, "must be at least 1"),
        (0, "must be at least 1"),
        (1001, "must be at most 1000 per item"),
        (1.5, "must be a whole number from 1 to 1000"),
    ],
)
def test_a_quantity_is_worded_the_same_typed_as_text_or_sent_as_a_number(
    quantity: float, expected: str
) -> None:
    # The starter's `--item SKU:QUANTITY:PRICE` gives text; the Order API's JSON a number.
    typed, sent = (order(items__0__quantity=value) for value in (str(quantity), quantity))

    assert problems(OrderRequest, typed) == problems(OrderRequest, sent)
    assert problems(OrderRequest, sent) == [f"items.0.quantity: {expected}"]


def test_the_valid_order_and_its_variants_are_accepted() -> None:
    OrderRequest.model_validate(VALID)
    OrderForm.model_validate(by_card())
    normalized = OrderRequest.model_validate(
        order(currency=" usd ", shipping_address__country="gb", order_id=" A1 ")
    )
    assert (normalized.currency, normalized.shipping_address.country) == ("USD", "GB")
    assert normalized.order_id == "A1"


def test_the_docs_order_file_is_a_valid_order() -> None:
    readme = (Path(__file__).parent.parent / "docs" / "running.md").read_text()
    example = re.search(r"```json\n(.*?)```", readme, re.DOTALL)
    assert example is not None
    OrderForm.model_validate_json(example.group(1))


SECRETS = {
    "card_number": "4242424242424241",  # fails Luhn
    "token": "tok_secret!",
    "name": "Ada Secret" * 20,
    "line1": "99 Secret Street" * 10,
}


def test_no_message_repeats_a_value() -> None:
    data = by_card(card_number=SECRETS["card_number"])
    data["shipping_address"] |= {"name": SECRETS["name"], "line1": SECRETS["line1"]}
    data["items"].append(data["items"][0])
    with pytest.raises(ValidationError) as form_error:
        OrderForm.model_validate(data)
    data["payment"] = {"token": SECRETS["token"], "last4": "4241"}
    with pytest.raises(ValidationError) as request_error:
        OrderRequest.model_validate(data)

    for error in (form_error.value, request_error.value):
        text = "\n".join([str(error), *describe_errors(error)])
        assert len(describe_errors(error)) == 4, text
        for secret in [*SECRETS.values(), "Secret", "4241", "SKU-BOOK"]:
            assert secret not in text


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
