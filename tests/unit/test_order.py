"""When an order placed again is the same order: what the starter and the Order API both ask."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from domain.order import OrderRequest
from domain.problems import describe_errors
from ordersaga.order_desk import WaitingSaga
from tests.support.orders import PAYLOAD_LIMIT, biggest_order, order_data

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


def test_the_biggest_order_the_input_admits_is_far_below_temporals_payload_limit() -> None:
    biggest = biggest_order("tok_" + "a" * 64, "4242")

    # The saga's input as the data converter writes it (encryption adds a few dozen bytes).
    assert len(biggest.model_dump_json()) * 100 < PAYLOAD_LIMIT


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("items", [PLACED["items"][0]] * 51, "items: must list at most 50 items"),
        (
            "policy",
            {"step_overrides": {f"step-{index}": {} for index in range(21)}},
            "policy.step_overrides: must name at most 20 steps",
        ),
    ],
)
def test_an_order_that_could_grow_past_a_limit_is_refused_naming_the_field(
    field: str, value: object, problem: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        OrderRequest.model_validate({**PLACED, field: value})

    assert describe_errors(refused.value) == [problem]


def test_what_a_waiting_saga_holds_is_said_in_one_phrase() -> None:
    waits = WaitingSaga(
        order_id="A1",
        step="charge_payment",
        compensation="refund_payment",
        service="payment",
        attempts=5,
        reason="ServiceUnavailable: 503",
        since=datetime(2026, 12, 7, tzinfo=UTC),
        holds={"reserve_inventory": "res_1", "charge_payment": "ch_1"},
        charged=1500,
        currency="USD",
    )
    assert waits.held == (
        "reserve_inventory res_1, charge_payment ch_1 (1500 minor units = 15.00 USD charged)"
    )
    assert waits.model_dump()["held"] == waits.held  # what the API and the page show
    nothing = waits.model_copy(update={"holds": {}, "charged": None})
    assert nothing.held == "nothing"
