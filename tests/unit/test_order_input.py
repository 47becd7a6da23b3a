"""Bad input is refused with one plain line per problem, naming the field, and never a value.

The models' own messages (`describe_errors`), as every entry point words them: the starter, the
Order API and the workflow.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from domain.order import OrderForm, OrderRequest
from domain.problems import describe_errors
from tests.support.order_input import (
    CARD,
    CARD_NUMBER,
    COUNTRY,
    CURRENCY,
    DUPLICATE,
    IDENTIFIER,
    LUHN,
    NOT_A_CARD,
    POSTAL_CODE,
    PRICE,
    QUANTITY,
    TEXT,
    VALID,
    by_card,
    item,
    order,
    problems,
)
from tests.support.paths import ROOT

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
    readme = (ROOT / "docs" / "running.md").read_text()
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
