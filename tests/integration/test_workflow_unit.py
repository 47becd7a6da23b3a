"""OrderSaga's logic with stand-in activities, on the time-skipping test server."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import pairwise

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.events import SagaEventType
from domain.ids import workflow_id_for
from domain.order import OrderRequest
from domain.policy import ActivityPolicy, SagaPolicy
from domain.saga import OperatorAction, OrderResult, Resolution, SagaState, SagaStatus, Withdrawal
from tests.support.orders import (
    COMPENSATIONS,
    STEPS,
    events_before,
    make_order,
    undone_after,
    undone_events,
    undone_through,
)
from tests.support.record_histories import wait_for
from tests.support.saga_checks import current_details
from tests.support.stand_ins import StandIns, fault, refusal
from workflows import OrderSaga
from workflows.order_steps import CONFIRMED, CONTRACTS, ORDER_STEPS, REFUSALS

#: Each step after the first, with the first refusal its service may answer.
REFUSED_STEPS = [(row.name, CONTRACTS[row.port.name].refusals[0].code) for row in ORDER_STEPS[1:]]


@asynccontextmanager
async def saga_worker(env: WorkflowEnvironment, stand_ins: StandIns) -> AsyncIterator[str]:
    task_queue = f"unit-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[OrderSaga],
        activities=stand_ins.activities(),
        interceptors=stand_ins.interceptors(),
    ):
        yield task_queue


async def start(
    env: WorkflowEnvironment, task_queue: str, order: OrderRequest
) -> WorkflowHandle[OrderSaga, OrderResult]:
    return await env.client.start_workflow(
        OrderSaga.run, order, id=workflow_id_for(order.order_id), task_queue=task_queue
    )


async def run_to_failure(
    env: WorkflowEnvironment, stand_ins: StandIns
) -> tuple[ApplicationError, SagaStatus]:
    async with saga_worker(env, stand_ins) as task_queue:
        handle = await start(env, task_queue, make_order())
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        status = await handle.query(OrderSaga.status)
    assert isinstance(failure.value.cause, ApplicationError)
    return failure.value.cause, status


async def test_happy_path_confirms_and_records_every_compensation(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns()
    async with saga_worker(time_skipping_env, stand_ins) as task_queue:
        order = make_order()
        handle = await start(time_skipping_env, task_queue, order)
        result = await handle.result()
        status = await handle.query(OrderSaga.status)

    assert stand_ins.calls == STEPS
    assert result.state == CONFIRMED
    assert result.ids == {row.yields: f"{row.name}-id" for row in ORDER_STEPS}
    assert result.total == order.total
    assert status.state == CONFIRMED
    assert status.steps_done == STEPS
    assert status.compensations_recorded == COMPENSATIONS
    assert status.compensations_run == []


async def test_inventory_refusal_fails_with_nothing_to_undo(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns({"reserve_inventory": [refusal("OutOfStock")]})
    error, status = await run_to_failure(time_skipping_env, stand_ins)

    assert stand_ins.calls == ["reserve_inventory"]
    assert error.type == "OutOfStock"
    assert "reserve_inventory" in error.message and "OutOfStock" in error.message
    assert status.state == SagaState.FAILED
    assert status.failed_step == "reserve_inventory"
    assert status.compensations_recorded == []
    assert status.compensations_run == []


@pytest.mark.parametrize(("step", "refusal_type"), REFUSED_STEPS)
async def test_refusal_undoes_the_steps_before_it_in_reverse(
    time_skipping_env: WorkflowEnvironment, step: str, refusal_type: str
) -> None:
    stand_ins = StandIns({step: [refusal(refusal_type)]})
    error, status = await run_to_failure(time_skipping_env, stand_ins)

    forward = STEPS[: STEPS.index(step) + 1]
    assert stand_ins.calls == forward + undone_after(step)
    assert error.type == refusal_type
    assert step in error.message
    assert status.state == SagaState.ABORTED
    assert status.failed_step == step
    assert status.failure_type == refusal_type
    assert status.compensations_run == undone_after(step)


async def test_transient_faults_are_retried_with_doubling_backoff(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns(
        {"charge_payment": [fault(), fault(), fault()]},
        clock=time_skipping_env.get_current_time,
    )
    async with saga_worker(time_skipping_env, stand_ins) as task_queue:
        result = await (await start(time_skipping_env, task_queue, make_order())).result()

    assert result.state == CONFIRMED
    times = stand_ins.attempt_times["charge_payment"]
    gaps = [round((later - earlier).total_seconds()) for earlier, later in pairwise(times)]
    assert gaps == [2, 4, 8]


async def test_exhausted_retries_undo_the_failed_step_too(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # After four faults the charge may still have gone through: refund it as well.
    stand_ins = StandIns({"charge_payment": [fault()] * 4})
    error, status = await run_to_failure(time_skipping_env, stand_ins)

    assert stand_ins.calls.count("charge_payment") == 4
    assert error.type == "ServiceUnavailable"
    assert status.state == SagaState.ABORTED
    assert status.compensations_run == undone_through("charge_payment")


async def test_compensations_retry_until_they_succeed(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns(
        {
            "charge_payment": [refusal("PaymentDeclined")],
            "release_inventory": [fault()] * 6,
        }
    )
    _, status = await run_to_failure(time_skipping_env, stand_ins)

    assert stand_ins.calls.count("release_inventory") == 7
    assert status.compensations_run == undone_after("charge_payment")
    assert status.state == SagaState.ABORTED


async def test_cancelling_mid_step_undoes_what_may_have_happened(
    own_time_skipping_env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns()
    stand_ins.hold["schedule_shipment"] = held = asyncio.Event()
    async with saga_worker(own_time_skipping_env, stand_ins) as task_queue:
        handle = await start(own_time_skipping_env, task_queue, make_order())
        await stand_ins.started["schedule_shipment"].wait()
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        held.set()
        status = await handle.query(OrderSaga.status)

    assert isinstance(failure.value.cause, CancelledError)
    # Cancelled, not failed: no step is blamed.
    assert (status.state, status.failed_step, status.failure_type) == (
        SagaState.CANCELLED,
        None,
        "Cancelled",
    )
    # The shipment was in flight when cancelled, so it is cancelled too.
    assert status.compensations_run == undone_through("schedule_shipment")


async def test_a_payload_that_is_not_an_order_is_refused_at_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns()
    bad = make_order().model_dump(mode="json") | {"items": []}
    async with saga_worker(time_skipping_env, stand_ins) as task_queue:
        handle = await time_skipping_env.client.start_workflow(
            "OrderSaga", bad, id=f"order-bad-{uuid.uuid4()}", task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        status = await handle.query(OrderSaga.status)

    assert stand_ins.calls == []
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "OrderRefused"
    assert "items: must list at least one item" in cause.message
    assert status.state == SagaState.REFUSED


async def test_an_order_id_that_is_not_its_workflow_id_is_refused(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns()
    async with saga_worker(time_skipping_env, stand_ins) as task_queue:
        handle = await time_skipping_env.client.start_workflow(
            OrderSaga.run, make_order(), id=f"order-other-{uuid.uuid4()}", task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()

    assert stand_ins.calls == []
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "OrderRefused"
    assert cause.message.startswith(f"Order {handle.id.removeprefix('order-')} refused: order_id:")


# --- Compensations that need an operator, and withdrawals -----------------------------------

STUCK = SagaPolicy(compensations=ActivityPolicy(first_retry_s=1, max_attempts=3))


@asynccontextmanager
async def saga_needing_attention(
    env: WorkflowEnvironment, stand_ins: StandIns
) -> AsyncIterator[tuple[WorkflowHandle[OrderSaga, OrderResult], SagaStatus]]:
    """A saga whose compensation failed its three attempts: it waits for an operator."""
    async with saga_worker(env, stand_ins) as task_queue:
        handle = await start(env, task_queue, make_order(policy=STUCK))
        yield handle, await wait_for(handle, SagaState.NEEDS_ATTENTION)


async def test_a_compensation_that_keeps_failing_waits_for_an_operator_retry(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns(
        {
            "charge_payment": [refusal("PaymentDeclined")],
            "release_inventory": [fault()] * 3,
        }
    )
    async with saga_needing_attention(time_skipping_env, stand_ins) as (handle, stuck):
        await handle.execute_update(
            OrderSaga.resolve_compensation, Resolution(action=OperatorAction.RETRY)
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        status = await handle.query(OrderSaga.status)

    undone = undone_after("charge_payment")
    assert stuck.attention is not None
    assert stuck.attention.compensation == "release_inventory"
    assert "ServiceUnavailable" in stuck.attention.reason
    assert stuck.compensations_run == undone[: undone.index("release_inventory")]
    assert stand_ins.calls.count("release_inventory") == 4
    assert status.state == SagaState.ABORTED
    assert status.attention is None
    assert status.compensations_run == undone
    assert status.resolved_by_hand == {}


async def test_marking_a_compensation_done_by_hand_lets_the_rest_run(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns(
        {
            "schedule_shipment": [refusal("ShippingUnavailable")],
            "refund_payment": [fault()] * 3,
        }
    )
    async with saga_needing_attention(time_skipping_env, stand_ins) as (handle, _):
        with pytest.raises(WorkflowUpdateFailedError):
            # Without a reason nothing is marked done: the validator refuses it.
            await handle.execute_update(
                "resolve_compensation", {"action": "mark_done", "reason": ""}
            )
        await handle.execute_update(
            OrderSaga.resolve_compensation,
            Resolution(action=OperatorAction.MARK_DONE, reason="refunded by phone, ticket 42"),
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        status = await handle.query(OrderSaga.status)

    undone = undone_after("schedule_shipment")
    after_refund = undone[undone.index("refund_payment") + 1 :]
    assert stand_ins.calls[-3 - len(after_refund) :] == ["refund_payment"] * 3 + after_refund
    assert status.state == SagaState.ABORTED
    assert status.compensations_run == undone
    assert status.resolved_by_hand == {"refund_payment": "refunded by phone, ticket 42"}


async def test_an_operator_resolution_is_refused_when_nothing_waits(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns()
    stand_ins.hold["charge_payment"] = held = asyncio.Event()
    async with saga_worker(time_skipping_env, stand_ins) as task_queue:
        handle = await start(time_skipping_env, task_queue, make_order())
        await stand_ins.started["charge_payment"].wait()
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                OrderSaga.resolve_compensation, Resolution(action=OperatorAction.RETRY)
            )
        held.set()
        result = await handle.result()

    assert "no compensation waiting" in str(refused.value.cause)
    assert result.state == CONFIRMED


async def test_a_withdrawn_order_is_undone_including_the_step_in_flight(
    own_time_skipping_env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns()
    stand_ins.hold["schedule_shipment"] = held = asyncio.Event()
    async with saga_worker(own_time_skipping_env, stand_ins) as task_queue:
        handle = await start(own_time_skipping_env, task_queue, make_order())
        await stand_ins.started["schedule_shipment"].wait()
        status = await handle.execute_update(
            OrderSaga.withdraw, Withdrawal(reason="changed my mind")
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        held.set()
        details = await current_details(handle)  # what the Web UI's workflow page shows

    # Withdrawn, not failed: no step is blamed, though shipping was under way.
    assert (status.state, status.failed_step, status.failure_type) == (
        SagaState.WITHDRAWN,
        None,
        "OrderWithdrawn",
    )
    assert (status.withdrawn, status.withdrawal_reason) == (True, "changed my mind")
    assert status.compensations_run == undone_through("schedule_shipment")
    assert STEPS[-1] not in stand_ins.calls
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "OrderWithdrawn"
    assert cause.message.startswith(f"Order {status.order_id} withdrawn by the customer;")
    assert details.startswith("**Withdrawn**\n\nOrderWithdrawn: withdrawn by the customer")
    assert f"Undone: {', '.join(status.compensations_run)}" in details


async def test_an_order_being_undone_cannot_be_withdrawn(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns(
        {
            "charge_payment": [refusal("PaymentDeclined")],
            "release_inventory": [fault()] * 3,
        }
    )
    async with saga_needing_attention(time_skipping_env, stand_ins) as (handle, _):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(OrderSaga.withdraw, Withdrawal())
        await handle.execute_update(
            OrderSaga.resolve_compensation, Resolution(action=OperatorAction.RETRY)
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()

    assert "can no longer be withdrawn: its saga is NeedsAttention" in str(refused.value.cause)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "PaymentDeclined"


async def test_a_malformed_operator_payload_is_refused_and_the_saga_carries_on(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns()
    stand_ins.hold["charge_payment"] = held = asyncio.Event()
    async with saga_worker(time_skipping_env, stand_ins) as task_queue:
        handle = await start(time_skipping_env, task_queue, make_order())
        await stand_ins.started["charge_payment"].wait()
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("withdraw", {"reason": 42, "unexpected": True})
        held.set()
        result = await handle.result()

    assert result.state == CONFIRMED


# --- Saga events ------------------------------------------------------------------------------

E = SagaEventType


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        ({}, [E.ORDER_SAGA_STARTED, *(row.event for row in ORDER_STEPS)]),
        (
            {"reserve_inventory": [refusal("OutOfStock")]},
            [E.ORDER_SAGA_STARTED, E.SAGA_FAILED, E.SAGA_COMPENSATED],
        ),
        (
            {"schedule_shipment": [refusal("ShippingUnavailable")]},
            [
                E.ORDER_SAGA_STARTED,
                *events_before("schedule_shipment"),
                E.SAGA_FAILED,
                *undone_events(undone_after("schedule_shipment")),
                E.SAGA_COMPENSATED,
            ],
        ),
    ],
    ids=["confirmed", "out-of-stock", "shipping-refused"],
)
async def test_every_event_of_a_saga_is_published_once_in_order(
    time_skipping_env: WorkflowEnvironment,
    failures: dict[str, list[BaseException]],
    expected: list[SagaEventType],
) -> None:
    stand_ins = StandIns(failures)
    async with saga_worker(time_skipping_env, stand_ins) as task_queue:
        order = make_order()
        handle = await start(time_skipping_env, task_queue, order)
        with contextlib.suppress(WorkflowFailureError):
            await handle.result()

    assert [event.type for event in stand_ins.events] == expected
    assert [event.sequence for event in stand_ins.events] == list(range(1, len(expected) + 1))
    assert {event.order_id for event in stand_ins.events} == {order.order_id}
    assert [event.event_id for event in stand_ins.events] == [
        f"order-{order.order_id}:{n}" for n in range(1, len(expected) + 1)
    ]
    assert stand_ins.events[0].data == {
        "customer_id": order.customer_id,
        "total": order.total,
        "currency": order.currency,
    }
    if expected[-1] is E.SAGA_COMPENSATED:
        failed = stand_ins.events[expected.index(E.SAGA_FAILED)]
        assert failed.data["step"] in STEPS
        assert failed.data["reason_type"] in list(REFUSALS)


async def test_a_step_failed_but_not_refused_leaves_its_event_number_unused(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # The charge may have gone through before its retries ran out, and so may its event.
    stand_ins = StandIns({"charge_payment": [fault()] * 4})
    await run_to_failure(time_skipping_env, stand_ins)

    # Number 1 is the start, then one per step done; the charge's own number is skipped.
    done = events_before("charge_payment")
    after = [E.SAGA_FAILED, *undone_events(undone_through("charge_payment")), E.SAGA_COMPENSATED]
    assert [(event.sequence, event.type) for event in stand_ins.events] == [
        (1, E.ORDER_SAGA_STARTED),
        *((n, event) for n, event in enumerate(done, start=2)),
        *((n, event) for n, event in enumerate(after, start=len(done) + 3)),
    ]
