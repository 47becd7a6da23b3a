"""The "Adding a step" recipe's example: a five-step checkout saga built from `Saga`.

Reserve, check for fraud, charge, ship, confirm; undone in reverse. The activities are
stand-ins (`CheckoutActivities`) that refuse what the test asks them to: the point is the saga.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import TypeVar

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.saga import Saga


T = TypeVar("T")


class Checkout(BaseModel):
    """An order to check out; `refused_at` names the step whose service says no."""

    order_id: str
    refused_at: str | None = None


class CheckoutActivities:
    """The five steps and their undos; `calls` records what ran, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _run(self, step: str, checkout: Checkout) -> str:
        self.calls.append(step)
        if checkout.refused_at == step:
            raise ApplicationError(f"{step} refused", type="Refused", non_retryable=True)
        return f"{step}-{checkout.order_id}"

    @activity.defn
    async def reserve(self, checkout: Checkout) -> str:
        return self._run("reserve", checkout)

    @activity.defn
    async def check_fraud(self, checkout: Checkout) -> str:
        return self._run("check_fraud", checkout)

    @activity.defn
    async def charge(self, checkout: Checkout) -> str:
        return self._run("charge", checkout)

    @activity.defn
    async def ship(self, checkout: Checkout) -> str:
        return self._run("ship", checkout)

    @activity.defn
    async def confirm(self, checkout: Checkout) -> str:
        return self._run("confirm", checkout)

    @activity.defn
    async def release(self, checkout: Checkout) -> None:
        self.calls.append("release")

    @activity.defn
    async def clear_fraud_hold(self, checkout: Checkout) -> None:
        self.calls.append("clear_fraud_hold")

    @activity.defn
    async def refund(self, checkout: Checkout) -> None:
        self.calls.append("refund")

    @activity.defn
    async def cancel_shipment(self, checkout: Checkout) -> None:
        self.calls.append("cancel_shipment")

    @activity.defn
    async def cancel_order(self, checkout: Checkout) -> None:
        self.calls.append("cancel_order")


Step = Callable[[CheckoutActivities, Checkout], Awaitable[str]]
Undo = Callable[[CheckoutActivities, Checkout], Awaitable[None]]

#: The steps in order, each with its undo: adding the fraud check is one more line.
STEPS: list[tuple[Step, Undo]] = [
    (CheckoutActivities.reserve, CheckoutActivities.release),
    (CheckoutActivities.check_fraud, CheckoutActivities.clear_fraud_hold),
    (CheckoutActivities.charge, CheckoutActivities.refund),
    (CheckoutActivities.ship, CheckoutActivities.cancel_shipment),
    (CheckoutActivities.confirm, CheckoutActivities.cancel_order),
]


async def call(
    activity: Callable[[CheckoutActivities, Checkout], Awaitable[T]], checkout: Checkout
) -> T:
    """Run one step or undo, retried on transient failures."""
    return await workflow.execute_activity_method(
        activity,
        checkout,
        start_to_close_timeout=timedelta(seconds=10),
        retry_policy=RetryPolicy(maximum_attempts=3),
    )


@workflow.defn
class CheckoutSaga:
    """Every step succeeds, or every step taken is undone in reverse."""

    @workflow.run
    async def run(self, checkout: Checkout) -> list[str]:
        """The ids the steps created, in order."""
        saga = Saga()
        created: list[str] = []
        try:
            for do, undo in STEPS:
                step = partial(call, do, checkout)
                undoing = partial(call, undo, checkout)
                created.append(await saga.step(do.__name__, step, compensation=undoing))
        except BaseException:
            await saga.compensate()
            raise
        return created
