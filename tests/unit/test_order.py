"""When an order placed again is the same order: what the starter and the Order API both ask."""

from __future__ import annotations

import pytest

from domain.order import OrderRequest
from tests.support.orders import order_data

PLACED = order_data()


@pytest.mark.parametrize(
    ("again", "same"),
    [
        (PLACED, True),
        ({**PLACED, "payment": {"token": "tok_again", "last4": "4242"}}, True),
        ({**PLACED, "payment": {"token": "tok_visa", "last4": "0002"}}, False),
        ({**PLACED, "currency": "EUR"}, False),
        ({**PLACED, "items": PLACED["items"][:1]}, False),
    ],
    ids=["same-body", "card-tokenized-again", "another-card", "another-currency", "fewer-items"],
)
def test_a_repeat_is_the_same_order_whatever_token_its_card_was_given(
    again: dict[str, object], same: bool
) -> None:
    placed = OrderRequest.model_validate(PLACED)

    assert OrderRequest.model_validate(again).is_repeat_of(placed) is same
