"""The Payment port's contract as checks any adapter can be run against (`ports/__init__.py`).

An adapter for a real provider passes them against the provider's sandbox; ours runs them against
the stand-in Payment service (`tests/integration/test_recipe_replacing_payment.py`). Each check
takes a fresh order id so they can run against a shared sandbox.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from domain.ids import idempotency_key
from ports.contract import ALREADY_COMPENSATED, CompensationInput, StepResult
from ports.payment import PAYMENT_DECLINED, ChargePaymentInput, ChargeRequest, PaymentPort

#: How many charges a provider holds for an order id, for the checks to count effects by.
Charges = Callable[[str], Awaitable[int]]


def charge(token: str = "tok_visa") -> ChargePaymentInput:
    order_id = f"contract-{uuid.uuid4().hex[:12]}"
    return ChargePaymentInput(
        idempotency_key=idempotency_key(f"order-{order_id}", "charge_payment"),
        request=ChargeRequest(
            order_id=order_id, customer_id="cust-1", amount=1234, currency="EUR", token=token
        ),
    )


def undo_of(forward: ChargePaymentInput) -> CompensationInput:
    return CompensationInput(order_id=forward.request.order_id, effect_key=forward.idempotency_key)


async def run(call: Callable[..., Awaitable[StepResult | None]], arg: object) -> StepResult | None:
    return await ActivityEnvironment().run(call, arg)


async def a_repeat_has_no_second_effect(adapter: PaymentPort, charges: Charges) -> None:
    """Rule 1: the same idempotency key twice is one charge, answered the same."""
    forward = charge()
    first = await run(adapter.charge_payment, forward)
    again = await run(adapter.charge_payment, forward)
    assert first == again
    assert await charges(forward.request.order_id) == 1


async def undo_is_by_the_forward_key(adapter: PaymentPort, charges: Charges) -> None:
    """Rule 2: the undo names the forward call's key; undoing what never happened succeeds."""
    forward = charge()
    await run(adapter.charge_payment, forward)
    await run(adapter.refund_payment, undo_of(forward))
    await run(adapter.refund_payment, undo_of(forward))  # an undo repeated is one undo
    await run(adapter.refund_payment, undo_of(charge()))  # never charged: nothing to do


async def a_late_forward_after_its_undo_is_refused(adapter: PaymentPort, charges: Charges) -> None:
    """Rule 3: a retry arriving after its undo must not take effect."""
    forward = charge()
    await run(adapter.refund_payment, undo_of(forward))
    with pytest.raises(ApplicationError) as refused:
        await run(adapter.charge_payment, forward)
    assert refused.value.type == ALREADY_COMPENSATED.code
    assert refused.value.non_retryable
    assert await charges(forward.request.order_id) == 0


async def refusals_are_typed(adapter: PaymentPort, charges: Charges) -> None:
    """Rule 4: a declined card is a non-retryable `PaymentDeclined`, and nothing is charged."""
    forward = charge("tok_declined")
    with pytest.raises(ApplicationError) as refused:
        await run(adapter.charge_payment, forward)
    assert refused.value.type == PAYMENT_DECLINED.code
    assert refused.value.non_retryable
    assert await charges(forward.request.order_id) == 0


CONTRACT = [
    a_repeat_has_no_second_effect,
    undo_is_by_the_forward_key,
    a_late_forward_after_its_undo_is_refused,
    refusals_are_typed,
]
