"""The "Adding a step" recipe: a fraud check before the charge, on the time-skipping server."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.fraud_check_saga import STEPS, Checkout, CheckoutActivities, CheckoutSaga


async def check_out(env: WorkflowEnvironment, checkout: Checkout) -> tuple[list[str], list[str]]:
    """Run the saga; return what it created (empty if it failed) and what ran, in order."""
    activities = CheckoutActivities()
    task_queue = f"recipe-{uuid.uuid4()}"
    every = [fn for pair in STEPS for fn in pair]
    bound = [getattr(activities, fn.__name__) for fn in every]
    async with Worker(
        env.client, task_queue=task_queue, workflows=[CheckoutSaga], activities=bound
    ):
        try:
            created = await env.client.execute_workflow(
                CheckoutSaga.run, checkout, id=f"checkout-{uuid.uuid4()}", task_queue=task_queue
            )
        except WorkflowFailureError:
            created = []
    return created, activities.calls


async def test_all_five_steps_run_in_order(time_skipping_env: WorkflowEnvironment) -> None:
    created, calls = await check_out(time_skipping_env, Checkout(order_id="A1"))

    assert calls == ["reserve", "check_fraud", "charge", "ship", "confirm"]
    assert created == [f"{step}-A1" for step in calls]


@pytest.mark.parametrize(
    ("refused_at", "undone"),
    [
        ("check_fraud", ["release"]),
        ("charge", ["clear_fraud_hold", "release"]),
        ("confirm", ["cancel_shipment", "refund", "clear_fraud_hold", "release"]),
    ],
)
async def test_a_refusal_undoes_the_steps_before_it_fraud_hold_included(
    time_skipping_env: WorkflowEnvironment, refused_at: str, undone: list[str]
) -> None:
    created, calls = await check_out(
        time_skipping_env, Checkout(order_id="A2", refused_at=refused_at)
    )

    forward = ["reserve", "check_fraud", "charge", "ship", "confirm"]
    assert created == []
    assert calls == forward[: forward.index(refused_at) + 1] + undone
