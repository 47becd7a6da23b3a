"""Failure semantics end to end: cancellation, withdrawal, stuck compensations, the deadline and
per-step retry policies, against the real dev server, worker and services, as a user drives them
(`starter.py` and the `temporal` CLI)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError

from domain.policy import ActivityPolicy, SagaPolicy
from domain.saga import SagaState
from infra.devserver import DevServer, installed_binary
from ordersaga.order_desk import start_saga
from tests.support.orders import (
    DECLINED_TOKEN,
    FAST_POLICY,
    IMPATIENT,
    SLOW_RETRY,
    STEPS,
    UNSERVED_POSTAL_CODE,
    make_order,
    on_path,
    undone_after,
    undone_through,
)
from tests.support.record_histories import wait_for
from tests.support.saga_checks import assert_fully_undone
from tests.support.service_state import Services
from tests.support.starter_runner import StarterRunner
from workflows import OrderSaga


def undone_when_interrupted_at(step: str, local_activities: bool) -> list[str]:
    """What a saga interrupted while `step` runs undoes, in order.

    `step` too, since it may have taken effect; on the fast path every step, since a step may
    have run in a workflow task that was never recorded (the steps that never ran first: they
    are registered after those that did, and undoing them is a no-op).
    """
    return undone_through(STEPS[-1] if local_activities else step)


async def test_cancel_with_the_temporal_cli_undoes_the_step_in_flight(
    client: Client,
    saga_task_queue: str,
    services: Services,
    dev_server: DevServer,
    local_activities: bool,
) -> None:
    await services.set_faults("shipping", latency_ms=1500)
    order = make_order(policy=on_path(SagaPolicy(), local_activities))
    stock_before = await services.stock()
    shipping_calls = await services.calls("shipping")
    saga = await start_saga(client, order, saga_task_queue)
    await services.wait_for_call("shipping", after=shipping_calls)

    cancel = await asyncio.create_subprocess_exec(
        installed_binary("temporal"), "workflow", "cancel", "--address", dev_server.address,
        "--workflow-id", saga.id, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await cancel.wait() == 0
    with pytest.raises(WorkflowFailureError) as failure:
        await saga.result()

    assert isinstance(failure.value.cause, CancelledError)
    assert (await saga.describe()).status is WorkflowExecutionStatus.CANCELED
    status = await saga.query(OrderSaga.status)
    assert status.compensations_run == undone_when_interrupted_at(
        "schedule_shipment", local_activities
    )
    # The shipment was being scheduled when the cancel came: it is cancelled, not left live.
    effects = await services.effects(order.order_id)
    assert [s["status"] for s in effects.shipments] in ([], ["cancelled"])
    assert_fully_undone(effects)
    assert await services.stock() == stock_before


async def test_withdraw_before_confirmation_undoes_everything(
    client: Client,
    saga_task_queue: str,
    services: Services,
    starter: StarterRunner,
    local_activities: bool,
) -> None:
    # Shipping fails once and the step backs off: a withdrawal reaches the saga between two
    # workflow tasks, on either path (on the fast path, one that comes while a local activity
    # runs waits for the task to end).
    await services.set_faults("shipping", fail_next=1)
    backing_off = on_path(SLOW_RETRY, local_activities)
    order = make_order(policy=backing_off)
    stock_before = await services.stock()
    shipping_calls = await services.calls("shipping")
    saga = await start_saga(client, order, saga_task_queue)
    await services.wait_for_call("shipping", after=shipping_calls)

    run = await starter("withdraw", order.order_id, "--reason", "ordered twice")

    assert run.code == 0, run.err
    assert f"Order {order.order_id} withdrawn." in run.out
    assert "state:        Withdrawn" in run.out
    # The customer changed their mind: Shipping, which was failing then, is not blamed.
    assert "reason:       OrderWithdrawn: withdrawn by the customer" in run.out
    assert "customer said: ordered twice" in run.out
    assert "failed step" not in run.out
    with pytest.raises(WorkflowFailureError) as failure:
        await saga.result()
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == "OrderWithdrawn"
    effects = await services.effects(order.order_id)
    assert effects.net_charged == 0 and [c["status"] for c in effects.charges] == ["refunded"]
    assert effects.live_reservations == [] and effects.live_shipments == []
    assert effects.record is None
    assert await services.stock() == stock_before
    status = await saga.query(OrderSaga.status)
    assert status.compensations_run == undone_when_interrupted_at(
        "schedule_shipment", local_activities
    )


async def test_withdraw_after_confirmation_is_refused_with_the_reason(
    client: Client, saga_task_queue: str, services: Services, starter: StarterRunner
) -> None:
    order = make_order()
    await (await start_saga(client, order, saga_task_queue)).result()

    run = await starter("withdraw", order.order_id)

    assert run.code == 1
    assert run.err.strip() == (
        f"error: refused: the saga of order {order.order_id} has ended (COMPLETED)"
    )
    effects = await services.effects(order.order_id)
    assert effects.record is not None and effects.record["status"] == "confirmed"
    assert effects.net_charged == order.total


async def test_a_stuck_release_needs_attention_until_an_operator_retries_it(
    client: Client, saga_task_queue: str, services: Services, starter: StarterRunner
) -> None:
    await services.set_faults("payment", latency_ms=500)
    order = make_order(payment={"token": DECLINED_TOKEN, "last4": "0002"}, policy=IMPATIENT)
    stock_before = await services.stock()
    saga = await start_saga(client, order, saga_task_queue)
    await wait_for(saga, "InventoryReserved")
    await services.set_faults("inventory", fail_next=1000)
    await wait_for(saga, SagaState.NEEDS_ATTENTION)

    listed = await starter("attention")
    while order.order_id not in listed.out:  # the visibility index lags a little
        listed = await starter("attention")
    stuck = await starter("status", order.order_id)
    assert await services.stock() != stock_before  # still reserved: the release has not run
    await services.reset_faults()
    retried = await starter("retry-compensation", order.order_id)
    with pytest.raises(WorkflowFailureError):
        await saga.result()

    assert f"{order.order_id}: release_inventory (inventory) failed 2 times since" in listed.out
    assert "holds reserve_inventory " in listed.out  # the stock it still holds, by its id
    assert "needs attention: release_inventory" in stuck.out
    assert retried.code == 0, retried.err
    status = await saga.query(OrderSaga.status)
    assert status.state == SagaState.ABORTED
    assert status.compensations_run == undone_after("charge_payment")
    assert await services.stock() == stock_before


async def test_a_compensation_marked_done_by_hand_lets_the_rest_run(
    client: Client, saga_task_queue: str, services: Services, starter: StarterRunner
) -> None:
    await services.set_faults("shipping", latency_ms=500)
    address = make_order().shipping_address.model_dump() | {"postal_code": UNSERVED_POSTAL_CODE}
    order = make_order(shipping_address=address, policy=IMPATIENT)
    stock_before = await services.stock()
    saga = await start_saga(client, order, saga_task_queue)
    await wait_for(saga, "PaymentCharged")
    await services.set_faults("payment", fail_next=1000)
    await wait_for(saga, SagaState.NEEDS_ATTENTION)

    no_reason = await starter("mark-done", order.order_id)
    done = await starter("mark-done", order.order_id, "--reason", "refunded by bank transfer")
    with pytest.raises(WorkflowFailureError):
        await saga.result()

    assert no_reason.code == 2 and "--reason" in no_reason.err
    assert done.code == 0, done.err
    assert "done by hand: refund_payment (refunded by bank transfer)" in done.out
    status = await saga.query(OrderSaga.status)
    assert status.compensations_run == undone_after("schedule_shipment")
    # The refund was settled outside the saga, so the Payment service still shows the charge;
    # the release after it ran as usual.
    effects = await services.effects(order.order_id)
    assert effects.net_charged == order.total
    assert await services.stock() == stock_before


async def test_an_order_not_confirmed_by_its_deadline_is_undone(
    client: Client, saga_task_queue: str, services: Services, local_activities: bool
) -> None:
    await services.set_faults("shipping", latency_ms=2500)
    policy = on_path(FAST_POLICY.model_copy(update={"deadline_s": 1.0}), local_activities)
    order = make_order(policy=policy)
    stock_before = await services.stock()

    saga = await start_saga(client, order, saga_task_queue)
    with pytest.raises(WorkflowFailureError) as failure:
        await saga.result()

    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == "DeadlineExceeded"
    status = await saga.query(OrderSaga.status)
    assert status.failed_step == "schedule_shipment"
    assert status.state == SagaState.ABORTED
    effects = await services.effects(order.order_id)
    assert effects.net_charged == 0 and effects.live_shipments == []
    assert effects.live_reservations == [] and effects.record is None
    assert await services.stock() == stock_before
    assert status.compensations_run == undone_when_interrupted_at(
        "schedule_shipment", local_activities
    )


@pytest.mark.parametrize("attempts", [1, 4])
async def test_each_step_retries_as_its_policy_says(
    client: Client, saga_task_queue: str, services: Services, attempts: int
) -> None:
    policy = FAST_POLICY.model_copy(
        update={
            "step_overrides": {
                "charge_payment": ActivityPolicy(first_retry_s=0.1, max_attempts=attempts)
            }
        }
    )
    await services.set_faults("payment", fail_next=1)
    order = make_order(policy=policy)

    saga = await start_saga(client, order, saga_task_queue)
    with contextlib.suppress(WorkflowFailureError):
        await saga.result()
    status = await saga.query(OrderSaga.status)

    effects = await services.effects(order.order_id)
    if attempts == 1:
        # One fault and no retry: the charge fails, and is undone in case it went through.
        assert status.state == SagaState.ABORTED
        assert status.failure_type == "ServiceUnavailable"
        assert status.compensations_run == undone_through("charge_payment")
        assert effects.charges == [] and effects.live_reservations == []
    else:
        assert status.state == "OrderConfirmed"
        assert [c["amount"] for c in effects.charges] == [order.total]
