"""What a customer is told when an order is confirmed or cancelled.

Messages name the order, amounts and why an order was cancelled, in the customer's terms; they
never carry a card number, token or address (events do not hold them either).
"""

from __future__ import annotations

from ordersaga.consumers.money import format_money

#: Why an order was cancelled, by the failure's reason type: each refusal a service may answer
#: (`workflows.order_steps.REFUSALS`; tests/unit/test_consumers.py checks each has its line),
#: then the saga's own failure types. `AlreadyCompensated` has none: a late call after its
#: undo is never why an order was cancelled.
REASONS = {
    "InvalidRequest": "some of its details could not be accepted",
    "OutOfStock": "an item is out of stock",
    "UnknownSku": "an item is no longer sold",
    "PaymentDeclined": "the card was declined",
    "ShippingUnavailable": "we cannot deliver to the address given",
    "ConfirmationRejected": "we could not accept it",
    "Cancelled": "we had to cancel it",
    "OrderWithdrawn": "you asked us to",
    "DeadlineExceeded": "we could not complete it in time",
}

#: Why, by the failed step, for reasons not listed above (a service that stayed down, ...).
#: The customer's words live here, with the messages, not in the saga's step table; a step
#: added to the table gets its line here (tests/unit/test_consumers.py checks every step has one).
REASONS_BY_STEP = {
    "reserve_inventory": "we could not reserve the items",
    "charge_payment": "we could not take the payment",
    "schedule_shipment": "we could not arrange the delivery",
    "confirm_order": "we could not confirm it",
}


def confirmation_message(
    order_id: str, total: int, currency: str, confirmation_id: str | None
) -> str:
    """The message for a confirmed order."""
    reference = f" (confirmation {confirmation_id})" if confirmation_id else ""
    return (
        f"Your order {order_id} is confirmed{reference}: {format_money(total, currency)}. "
        "We will let you know when it ships."
    )


def cancellation_message(
    order_id: str,
    failed_step: str | None,
    reason_type: str | None,
    charged: tuple[int, str] | None,
) -> str:
    """The message for an order whose saga failed and was undone.

    Args:
        order_id: The order.
        failed_step: The step that failed, if known.
        reason_type: The failure's type, if known.
        charged: The amount and currency charged (and since refunded), or None if the card
            was never charged.
    """
    why = REASONS.get(reason_type or "") or REASONS_BY_STEP.get(failed_step or "")
    money = (
        f"the {format_money(*charged)} you paid has been refunded"
        if charged
        else "you have not been charged"
    )
    return f"Your order {order_id} was cancelled: {why or 'we could not complete it'}; {money}."
