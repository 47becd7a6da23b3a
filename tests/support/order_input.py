"""Orders with one field wrong, and the words each problem is refused in, for the input tests."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from domain.problems import describe_errors
from tests.support.orders import order_data

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
