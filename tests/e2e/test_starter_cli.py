"""`starter.py` as a user runs it: a separate process talking to the dev server."""

from __future__ import annotations

import pytest
from temporalio.client import Client, WorkflowFailureError

from tests.support.service_state import Services
from tests.support.starter_runner import StarterRunner, new_order_id


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


async def test_placing_the_same_order_twice_starts_no_second_saga_and_follows_the_first(
    starter: StarterRunner, services: Services
) -> None:
    order_id = new_order_id()
    first = await starter("place", "--order-id", order_id, "--item", "SKU-MUG:1:899")
    second = await starter("place", "--order-id", order_id, "--item", "SKU-MUG:1:899")

    # The card is tokenized again (a new token), yet it is the same order: as the API says.
    assert (first.code, second.code) == (0, 0), second.err
    assert f"Order {order_id} was placed before, as this same order: no second saga" in second.out
    assert f"Order {order_id} confirmed" in second.out
    assert len((await services.effects(order_id)).charges) == 1


async def test_another_order_under_a_used_id_is_refused_as_the_api_refuses_it(
    starter: StarterRunner,
) -> None:
    order_id = new_order_id()
    declined = ("--item", "SKU-BOOK:1:1500", "--card", "4000000000000002")
    await starter("place", "--order-id", order_id, *declined)
    again = await starter("place", "--order-id", order_id, "--item", "SKU-BOOK:1:1500")

    assert again.code == 1
    assert f"error: order {order_id} was placed before with another body" in again.err
    assert "no second saga was started" in again.err


async def test_a_price_with_its_currency_is_taken_in_major_units(
    starter: StarterRunner, services: Services
) -> None:
    order_id = new_order_id()
    run = await starter("place", "--order-id", order_id, "--item", "SKU-BOOK:2:15.00USD")

    assert run.code == 0, run.err
    assert "3000 minor units = 30.00 USD" in run.out
    [charge] = (await services.effects(order_id)).charges
    assert charge["amount"] == 3000


async def test_a_card_number_with_spaces_and_dashes_is_accepted(starter: StarterRunner) -> None:
    run = await starter(
        "place", "--order-id", new_order_id(), "--item", "SKU-MUG:1:899",
        "--card", "4242 4242-4242 4242",
    )  # fmt: skip

    assert run.code == 0, run.err
    assert "confirmed: 899 minor units = 8.99 USD" in run.out


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
    assert "CANCELED" in final.out and "state:        Cancelled" in final.out
    assert "reason:       Cancelled: cancelled" in final.out and "failed step" not in final.out
    assert (await services.effects(order_id)).net_charged == 0


async def test_unknown_order_gets_a_clear_error(starter: StarterRunner) -> None:
    run = await starter("status", "no-such-order")

    assert run.code == 1
    assert run.err.strip() == "error: no saga for order no-such-order"
