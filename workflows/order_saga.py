"""The `OrderSaga` workflow: run the order's steps in turn, or undo every step taken, in reverse.

The steps are the rows of `workflows.order_steps` (reserve, charge, ship, confirm); the undoing is
`workflows.saga.Saga`'s; what the saga tells the world is `workflows.telemetry`'s. Temporal's
event history is the saga's persistence: the compensations registered are rebuilt on replay.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import (
    ApplicationError,
    FailureError,
    TimeoutType,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    import pydantic

    from ordersaga.models import (
        Attention,
        CompensationInput,
        OperatorAction,
        OrderInput,
        OrderRequest,
        OrderResult,
        RefusedOrder,
        Resolution,
        SagaState,
        SagaStatus,
        StepResult,
        Withdrawal,
        idempotency_key,
        order_id_of,
    )
    from workflows.order_steps import CONFIRMED, ORDER_STEPS, STEPS, WITHDRAWABLE, OrderStep

from workflows.order_failures import (
    CANCELLED,
    DEADLINE_EXCEEDED,
    ORDER_REFUSED,
    ORDER_WITHDRAWN,
    StepFailed,
    describe,
    order_refused,
    saga_error,
    timeout_type,
)
from workflows.saga import Compensation, CompensationFailure, Decision, Saga, shielded
from workflows.telemetry import SagaTelemetry

#: Sagas started before the order deadline existed have no timer in their history; this patch
#: keeps them replaying as they ran, while new sagas get the deadline.
DEADLINE_PATCH = "order-deadline"

#: Sagas recorded before the order id had to match the workflow id ran with any order id; the
#: patch (asked only on a mismatch, so matching sagas carry no marker) keeps them replaying.
ORDER_ID_PATCH = "order-id-matches-workflow-id"

#: Lean sagas ask this one patch instead of the deadline's and the events' (each patch costs a
#: marker and a search attribute upsert). Under it the deadline bounds each step's activity
#: instead of running a timer, `OrderStatus` changes only where people filter on it, and the last
#: events go out by a local activity. Older sagas replay as they ran.
LEAN_PATCH = "lean-saga"

#: Sagas started from here on ask this one patch instead of `LEAN_PATCH`, which it implies: each
#: step's activity also publishes the step's own event once it has succeeded, so a confirmed
#: saga needs no activity to publish its last event. Older sagas replay as they ran.
STEP_EVENTS_PATCH = "steps-announce-their-events"

#: Fast-path sagas recorded before this patch took a local activity's attempt timeout at the
#: deadline for the step's own failure; asked only then.
LOCAL_DEADLINE_PATCH = "local-activity-deadline"

#: Failures that come from outside the steps, cutting them short wherever they are.
INTERRUPTIONS = frozenset({CANCELLED, ORDER_WITHDRAWN, DEADLINE_EXCEEDED})

#: States in which the saga waits no more: what a withdrawal waits for.
SETTLED = frozenset({SagaState.ABORTED, SagaState.FAILED, SagaState.NEEDS_ATTENTION})


# A payload that is not an order reaches `run` as a `RefusedOrder`; one that is not even JSON
# fails the workflow at once (instead of retrying the workflow task forever).
@workflow.defn(failure_exception_types=[pydantic.ValidationError])
class OrderSaga:
    """Places one order: every step succeeds, or every step already taken is undone."""

    @workflow.init
    def __init__(self, request: OrderInput) -> None:
        self._request: OrderRequest  # once `run` has accepted it
        order_id = order_id_of(workflow.info().workflow_id)
        self._status = SagaStatus(order_id=order_id, state=SagaState.STARTED.value)
        self._telemetry = SagaTelemetry(self._status)
        self._saga = Saga(on_failure=self._ask_operator, on_compensated=self._compensated)
        self._forward: asyncio.Task[OrderResult] | None = None
        self._resolution: Resolution | None = None
        self._deadline_at: datetime | None = None

    @workflow.query
    def status(self) -> SagaStatus:
        """Where the saga stands, what it has done and what it has undone."""
        recorded = [STEPS[step].undo for step in self._saga.registered]
        return self._status.model_copy(update={"compensations_recorded": recorded})

    @workflow.run
    async def run(self, request: OrderInput) -> OrderResult:
        """Run the saga to the end: a confirmed order, or a failure after compensating."""
        if isinstance(request, RefusedOrder):
            raise self._refuse(request.problems)
        if request.order_id != self._status.order_id and workflow.patched(ORDER_ID_PATCH):
            raise self._refuse(
                [f"order_id: must be {self._status.order_id}, as its workflow id says"]
            )
        self._request = request
        # One patch (and so one marker) per saga: the newest, or failing that the one before.
        steps_announce = workflow.patched(STEP_EVENTS_PATCH)
        lean = steps_announce or workflow.patched(LEAN_PATCH)
        self._telemetry.started(request, lean=lean, steps_announce=steps_announce)
        deadline = request.policy.deadline_s
        if lean and deadline is not None:
            self._deadline_at = workflow.info().start_time + timedelta(seconds=deadline)
        # The steps run as a task of their own, so a withdrawal can interrupt them.
        self._forward = forward = asyncio.create_task(self._place_order(request))
        if self._status.withdrawn:
            forward.cancel()
        try:
            if not lean and workflow.patched(DEADLINE_PATCH) and deadline is not None:
                await self._before_deadline(forward, deadline)
            result = await forward
            if self._status.withdrawn:
                # Withdrawn in the same moment the last step succeeded: undo that too.
                raise asyncio.CancelledError
        except BaseException as err:
            # BaseException: a cancelled workflow raises asyncio.CancelledError, which is not an
            # Exception, and a cancelled order must be unwound too.
            forward.cancel()
            if not isinstance(err, StepFailed):
                withdrawn = self._status.withdrawn
                self._fail(
                    self._step_in_flight(),
                    ORDER_WITHDRAWN if withdrawn else CANCELLED,
                    "withdrawn by the customer" if withdrawn else "cancelled",
                )
            if request.policy.local_activities and self._status.failure_type in INTERRUPTIONS:
                # On the fast path, steps may have taken effect in a workflow task that was never
                # recorded: the server refuses to complete a task while a cancellation or an
                # update waits, and the rerun stops at once. Undo every step (undoing one that
                # never ran is a no-op).
                self._register_every_step()
            await shielded(self._undo_all())
            failure = saga_error(err, self._status)
            if failure is err:
                raise  # the workflow was cancelled: it ends as cancelled
            raise failure from err
        self._telemetry.confirmed()
        await self._telemetry.publish_unpublished()
        return result

    @workflow.update
    async def withdraw(self, withdrawal: Withdrawal) -> SagaStatus:
        """The customer takes the order back: everything done so far is undone.

        Returns the saga's status once it has ended (or needs attention).
        """
        workflow.logger.info("Order withdrawn", extra={"order_id": self._status.order_id})
        self._status.withdrawn = True
        if self._forward:
            self._forward.cancel()
        await workflow.wait_condition(lambda: self._status.state in SETTLED)
        return self.status()

    @withdraw.validator
    def _accept_withdrawal(self, withdrawal: Withdrawal) -> None:
        if self._status.withdrawn:
            raise ValueError(f"order {self._status.order_id} is already withdrawn")
        if self._status.state not in WITHDRAWABLE:
            raise ValueError(
                f"order {self._status.order_id} can no longer be withdrawn: "
                f"its saga is {self._status.state}"
            )

    @workflow.update
    async def resolve_compensation(self, resolution: Resolution) -> SagaStatus:
        """An operator's answer to a compensation that needs attention.

        Retry it now, or mark it done by hand (with a reason). Returns the status once the saga
        has taken the answer up.
        """
        self._resolution = resolution
        await workflow.wait_condition(lambda: self._resolution is None)
        return self.status()

    @resolve_compensation.validator
    def _accept_resolution(self, resolution: Resolution) -> None:
        if self._status.state != SagaState.NEEDS_ATTENTION or self._resolution:
            raise ValueError(
                f"order {self._status.order_id} is {self._status.state}; "
                "there is no compensation waiting for an operator"
            )

    async def _place_order(self, request: OrderRequest) -> OrderResult:
        for step in ORDER_STEPS:
            created = await self._run_step(step)
            self._status.ids[step.yields] = created.id
        return OrderResult(
            order_id=request.order_id,
            state=CONFIRMED,
            total=request.total,
            currency=request.currency,
            ids=self._status.ids,
        )

    async def _run_step(self, step: OrderStep[Any]) -> StepResult:
        key = self._key(step)
        policy = self._request.policy.for_step(step.name)
        started = workflow.now()
        time_left = self._time_left()
        if time_left is not None and time_left <= timedelta(0):
            raise self._past_deadline(step.name)
        try:
            created = await self._saga.step(
                step.name,
                lambda: self._telemetry.execute(
                    step.activity,
                    step.build_input(self._request, self._status.ids, key),
                    policy,
                    within=time_left,
                    step=step,
                ),
                compensation=self._undo(step),
            )
        except FailureError as err:
            # An activity's failure arrives as an ActivityError; a local activity's as its cause.
            self._telemetry.step_interrupted(step.name, started)
            if is_cancelled_exception(err):
                raise  # cancelled mid-step: the step may have taken effect, and stays registered
            if time_left is not None and self._deadline_timed_out(err, time_left, policy.timeout):
                raise self._past_deadline(step.name) from err
            raise self._fail(step.name, *describe(err)) from err
        self._status.steps_done.append(step.name)
        self._status.state = step.state_after
        self._telemetry.step_done(step, created.id, started)
        return created

    def _key(self, step: OrderStep[Any]) -> str:
        return idempotency_key(workflow.info().workflow_id, step.name)

    def _undo(self, step: OrderStep[Any]) -> Compensation:
        # The input is made only if the step is undone: most sagas undo nothing.
        return lambda: self._telemetry.execute(
            step.compensation,
            CompensationInput(order_id=self._status.order_id, effect_key=self._key(step)),
            self._request.policy.compensations,
        )

    def _register_every_step(self) -> None:
        for step in ORDER_STEPS:
            if step.name not in self._saga.registered:
                self._saga.add_compensation(step.name, self._undo(step))

    def _time_left(self) -> timedelta | None:
        """How long the steps may still take, if the order has a deadline."""
        return self._deadline_at - workflow.now() if self._deadline_at else None

    def _deadline_timed_out(
        self, err: FailureError, time_left: timedelta, step_timeout: timedelta
    ) -> bool:
        """Whether the step timed out because of the order's deadline.

        Either the time all its attempts had ran out, or (as a local activity may report it) an
        attempt's, where the deadline was the tighter bound.
        """
        timeout = timeout_type(err)
        return timeout == TimeoutType.SCHEDULE_TO_CLOSE or (
            timeout == TimeoutType.START_TO_CLOSE
            and time_left <= step_timeout
            and workflow.patched(LOCAL_DEADLINE_PATCH)
        )

    def _past_deadline(self, step: str) -> StepFailed:
        reason = f"order not confirmed within {self._request.policy.deadline_s:g} s"
        return self._fail(step, DEADLINE_EXCEEDED, reason)

    async def _before_deadline(self, forward: asyncio.Task[OrderResult], seconds: float) -> None:
        """Wait for the steps to finish; past the deadline, fail the step in flight.

        How sagas started before `LEAN_PATCH` keep their deadline: with a timer.
        """
        try:
            summary = f"order deadline: confirmed within {seconds:g} s or undone"
            await workflow.wait_condition(forward.done, timeout=seconds, timeout_summary=summary)
        except TimeoutError:
            raise self._past_deadline(self._step_in_flight()) from None

    async def _undo_all(self) -> None:
        """Undo every step that may have taken effect, and say how the saga ended."""
        if self._saga.pending:
            self._set_state(SagaState.COMPENSATING)
            await self._saga.compensate()
            self._set_state(SagaState.ABORTED)
        else:
            self._set_state(SagaState.FAILED)
        self._telemetry.unwound()
        await self._telemetry.publish_unpublished()

    async def _ask_operator(self, failure: CompensationFailure) -> Decision:
        """Wait, visibly, for an operator to retry or settle a compensation that keeps failing."""
        undo = STEPS[failure.step].undo
        failure_type, message = describe(failure.error)
        self._status.attention = Attention(
            compensation=undo,
            reason=f"{failure_type}: {message}",
            attempts=self._request.policy.compensations.max_attempts,
        )
        self._status.state = SagaState.NEEDS_ATTENTION.value
        await self._telemetry.needs_attention(self._status.attention)
        await workflow.wait_condition(lambda: self._resolution is not None)
        assert self._resolution is not None
        resolution, self._resolution = self._resolution, None
        self._status.attention = None
        self._status.state = SagaState.COMPENSATING.value
        self._telemetry.attention_resolved(resolution.action)
        if resolution.action is OperatorAction.MARK_DONE:
            self._status.resolved_by_hand[undo] = resolution.reason
            return Decision.SETTLED
        return Decision.RETRY

    def _compensated(self, step: str) -> None:
        row = STEPS[step]
        self._status.compensations_run.append(row.undo)
        self._telemetry.compensated(row, by_hand=row.undo in self._status.resolved_by_hand)

    def _set_state(self, state: SagaState) -> None:
        self._status.state = state.value
        self._telemetry.state_changed()

    def _step_in_flight(self) -> str:
        registered = self._saga.registered
        return registered[-1] if registered else ORDER_STEPS[0].name

    def _refuse(self, problems: list[str]) -> ApplicationError:
        """End the saga before any step: its input is not an order it may run."""
        self._status.state = SagaState.REFUSED.value
        self._status.failure_type = ORDER_REFUSED
        self._status.failure_reason = "; ".join(problems)
        self._telemetry.refused()
        return order_refused(self._status)

    def _fail(self, step: str, failure_type: str, reason: str) -> StepFailed:
        self._status.failed_step = step
        self._status.failure_type = failure_type
        self._status.failure_reason = reason
        self._telemetry.step_failed()
        return StepFailed(step, failure_type, reason)
