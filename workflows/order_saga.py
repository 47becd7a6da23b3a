"""The `OrderSaga` workflow: run the order's steps in turn, or undo every step taken, in reverse.

The steps are the rows of `workflows.order_steps` (reserve, charge, ship, confirm); the undoing is
`temporal_saga.Saga`'s; what the saga has done, and what it tells the world of it, is
`workflows.order_record`'s. Temporal's event history is the saga's persistence: the
compensations registered are rebuilt on replay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import activity, workflow
from temporalio.common import RetryPolicy, VersioningBehavior
from temporalio.exceptions import FailureError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    import pydantic

    from domain.ids import idempotency_key, order_id_of
    from domain.order import OrderInput, OrderRequest, RefusedOrder
    from domain.policy import ActivityPolicy
    from domain.saga import OrderResult, Resolution, SagaState, SagaStatus, Withdrawal
    from ports.contract import CompensationInput, StepResult
    from workflows.order_steps import ORDER_STEPS, STEPS, WITHDRAWABLE, OrderStep

from temporal_saga import Compensation, CompensationFailure, Decision, Saga, shielded

from workflows.order_failures import (
    DEADLINE_EXCEEDED,
    INTERRUPTIONS,
    StepFailed,
    cut_short_by_deadline,
    describe,
    saga_error,
)
from workflows.order_record import OrderRecord

#: States in which the saga waits no more: what a withdrawal waits for (a step may have failed
#: for good as the customer withdrew).
SETTLED = frozenset(
    {SagaState.WITHDRAWN, SagaState.ABORTED, SagaState.FAILED, SagaState.NEEDS_ATTENTION}
)

#: Errors that fail the saga's workflow rather than its workflow task: a payload that is not
#: even JSON fails it at once (instead of retrying the task forever); a payload that is not an
#: order reaches `run` as a `RefusedOrder`.
FAILS_THE_WORKFLOW: tuple[type[Exception], ...] = (pydantic.ValidationError,)

#: What may cut the steps short, each of which undoes them: a step's failure, a withdrawal or a
#: cancellation (asyncio.CancelledError, which is not an Exception), or an error that fails the
#: workflow. Any other exception is a bug of this build: it fails the workflow task, so the saga
#: stays where it stands, undoing nothing, until a build that runs it is deployed and the saga
#: is moved there (docs/versioning.md), rather than undoing a good order for our mistake.
UNWINDS: tuple[type[BaseException], ...] = (
    StepFailed,
    FailureError,
    asyncio.CancelledError,
    *FAILS_THE_WORKFLOW,
)

#: A local activity that backs off longer than this waits on a timer, outside the workflow task,
#: so that queries, withdrawals and cancellations reach the saga while it waits (the SDK's
#: default is a minute).
LOCAL_RETRY_THRESHOLD = timedelta(seconds=1)

#: Publishing the saga's last events retries until the bus takes them, like a compensation.
PUBLISH_POLICY = ActivityPolicy(first_retry_s=1.0, max_attempts=1000)

Arg = TypeVar("Arg")
Result = TypeVar("Result")


@activity.defn(name="publish_events")
async def publish_events(order_id: str) -> None:
    """Carry a saga's last events (its outcome), when no step is left to carry them.

    There is nothing to do here: like every activity's, this call's events were published by
    the worker's interceptor before it ran.
    """


# PINNED: a saga runs to its end on the build that started it, so a change to what it does is a
# new build of the worker (docs/versioning.md), never a branch in this code.
@workflow.defn(
    failure_exception_types=FAILS_THE_WORKFLOW,
    versioning_behavior=VersioningBehavior.PINNED,
)
class OrderSaga:
    """Places one order: every step succeeds, or every step already taken is undone."""

    @workflow.init
    def __init__(self, request: OrderInput) -> None:
        self._order: OrderRequest  # once `run` has accepted it
        self._deadline: datetime | None = None
        self._record = OrderRecord(order_id_of(workflow.info().workflow_id))
        self._status = self._record.status
        self._saga = Saga(
            on_failure=self._ask_operator,
            on_compensated=lambda step: self._record.compensated(STEPS[step]),
        )
        self._steps: asyncio.Task[None] | None = None
        self._resolution: Resolution | None = None

    @workflow.query
    def status(self) -> SagaStatus:
        """Where the saga stands, what it has done and what it has undone."""
        recorded = [STEPS[step].undo for step in self._saga.registered]
        return self._status.model_copy(update={"compensations_recorded": recorded})

    @workflow.run
    async def run(self, request: OrderInput) -> OrderResult:
        """Run the saga to the end: a confirmed order, or a failure after compensating.

        Here is what happens around the order: its refusal, its withdrawal, its cancellation
        and its deadline; `_place_order` is the order's own steps.
        """
        self._order = order = self._accept(request)
        if order.policy.deadline_s is not None:
            self._deadline = workflow.info().start_time + timedelta(seconds=order.policy.deadline_s)
        self._record.started(order)
        # The steps run as a task of their own, so a withdrawal can interrupt them.
        self._steps = steps = asyncio.create_task(self._place_order())
        if self._status.withdrawn:
            steps.cancel()
        try:
            await steps
            if self._status.withdrawn:
                raise asyncio.CancelledError  # withdrawn as the last step succeeded: undo it too
        except UNWINDS as err:
            failure = await self._unwind(err)
            if failure is err:
                raise  # the workflow was cancelled: it ends as cancelled
            raise failure from err
        result = self._record.confirmed()
        await self._publish_events()
        return result

    @workflow.update
    async def withdraw(self, withdrawal: Withdrawal) -> SagaStatus:
        """The customer takes the order back: everything done so far is undone.

        Returns the saga's status once it has ended (or needs attention).
        """
        self._record.withdrawn(withdrawal.reason)
        if self._steps:
            self._steps.cancel()
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

    # --- The order: its steps, each undone if the saga unwinds --------------------------------

    async def _place_order(self) -> None:
        for step in ORDER_STEPS:
            await self._do_step(step)

    async def _do_step(self, step: OrderStep[Any]) -> None:
        """Do `step`, its compensation registered first.

        Raises:
            StepFailed: The step failed for good, or the deadline came first.
            asyncio.CancelledError: The saga was cancelled or withdrawn meanwhile.
        """
        policy = self._order.policy.for_step(step.name)
        arg = step.build_input(self._order, self._status.ids, self._key(step))
        started = workflow.now()
        time_left = self._deadline - started if self._deadline else None
        if time_left is not None and time_left <= timedelta(0):
            raise self._past_deadline(step.name)

        async def call() -> StepResult:
            with self._record.carrying(step):
                return await self._call(step.activity, arg, policy, within=time_left)

        try:
            created = await self._saga.step(step.name, call, compensation=self._undoing(step))
        except FailureError as err:
            # An activity's failure arrives as an ActivityError; a local activity's as its cause.
            if is_cancelled_exception(err):
                self._record.step_ended(step.name, started, "cancelled")
                raise  # cancelled mid-step: the step may have taken effect, and stays registered
            self._record.step_ended(step.name, started, "failed")
            if cut_short_by_deadline(err, time_left, policy.timeout):
                raise self._past_deadline(step.name) from err
            raise self._record.failed(step.name, *describe(err)) from err
        self._record.step_done(step, created.id, started)

    def _undoing(self, step: OrderStep[Any]) -> Compensation:
        """`step`'s compensation; its input is made only if it runs (most sagas undo nothing)."""

        async def undo() -> None:
            arg = CompensationInput(order_id=self._order.order_id, effect_key=self._key(step))
            with self._record.carrying():
                await self._call(step.compensation, arg, self._order.policy.compensations)

        return undo

    def _key(self, step: OrderStep[Any]) -> str:
        return idempotency_key(workflow.info().workflow_id, step.name)

    def _past_deadline(self, step: str) -> StepFailed:
        reason = f"order not confirmed within {self._order.policy.deadline_s:g} s"
        return self._record.failed(step, DEADLINE_EXCEEDED, reason)

    # --- Around the order: refusal, unwinding, the operator -----------------------------------

    def _accept(self, request: OrderInput) -> OrderRequest:
        """The order, if the saga may run it; else the saga ends, refused, before any step."""
        if isinstance(request, RefusedOrder):
            raise self._record.refused(request.problems)
        if request.order_id != self._status.order_id:
            problem = f"order_id: must be {self._status.order_id}, as its workflow id says"
            raise self._record.refused([problem])
        return request

    async def _unwind(self, err: BaseException) -> BaseException:
        """Undo every step that may have taken effect; return the error the saga ends with.

        Args:
            err: What cut the steps short: a step's failure, a withdrawal or a cancellation.
        """
        if self._steps:
            self._steps.cancel()
        if not isinstance(err, StepFailed):
            self._record.interrupted()
        if self._status.failure_type in INTERRUPTIONS:
            self._register_every_step()
        await shielded(self._undo_all())
        return saga_error(err, self._status)

    def _register_every_step(self) -> None:
        """The steps were cut short from outside (withdrawn, cancelled, past the deadline).

        On the fast path, steps may have taken effect in a workflow task that was never
        recorded: the server refuses to complete a task while a cancellation or an update
        waits, and the rerun stops at once. So every step is registered to be undone (undoing
        one that never ran is a no-op).
        """
        if not self._order.policy.local_activities:
            return
        for step in ORDER_STEPS:
            if step.name not in self._saga.registered:
                self._saga.add_compensation(step.name, self._undoing(step))

    async def _undo_all(self) -> None:
        """Undo every step that may have taken effect, and say how the saga ended."""
        undoing = bool(self._saga.pending)
        if undoing:
            self._record.compensating()
            await self._saga.compensate()
        self._record.ended(undid_steps=undoing)
        await self._publish_events()

    async def _ask_operator(self, failure: CompensationFailure) -> Decision:
        """Wait, visibly, for an operator to retry or settle a compensation that keeps failing."""
        step = STEPS[failure.step]
        self._record.needs_attention(
            step, failure.error, self._order.policy.compensations.max_attempts
        )
        await self._publish_events()
        await workflow.wait_condition(lambda: self._resolution is not None)
        assert self._resolution is not None
        resolution, self._resolution = self._resolution, None
        return self._record.answered(step, resolution)

    # --- Calling activities --------------------------------------------------------------------

    async def _publish_events(self) -> None:
        """Publish the events no step is left to carry (at most one activity per saga end).

        By a local activity: no round trip through the server's queue.
        """
        if not self._record.has_unpublished:
            return
        with self._record.carrying():
            await workflow.execute_local_activity(
                publish_events, self._status.order_id, **_options(PUBLISH_POLICY)
            )

    async def _call(
        self,
        activity: Callable[[Any, Arg], Awaitable[Result]],
        arg: Arg,
        policy: ActivityPolicy,
        *,
        within: timedelta | None = None,
    ) -> Result:
        """Run an activity method to its result, or its last failure.

        Local or regular, as the order's policy says.

        Args:
            activity: The activity method (a port's method).
            arg: Its input.
            policy: Its timeout and retries.
            within: The time all its attempts may take together (the order's deadline).
        """
        if self._order.policy.local_activities:
            return await workflow.execute_local_activity_method(
                activity,
                arg,
                local_retry_threshold=LOCAL_RETRY_THRESHOLD,
                **_options(policy, within),
            )
        return await workflow.execute_activity_method(activity, arg, **_options(policy, within))


def _options(policy: ActivityPolicy, within: timedelta | None = None) -> dict[str, Any]:
    """An activity's timeouts and retries, as local and regular activities both take them.

    Refusals are never retried: they are non-retryable errors.
    """
    return {
        "start_to_close_timeout": policy.timeout,
        "schedule_to_close_timeout": within,
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=policy.first_retry_s),
            backoff_coefficient=policy.backoff,
            maximum_interval=timedelta(seconds=policy.max_retry_interval_s),
            maximum_attempts=policy.max_attempts,
        ),
    }
