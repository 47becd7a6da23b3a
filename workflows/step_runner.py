"""How the order saga runs one step: its activity called, bounded and judged.

A step's activity gets its idempotency key, its retry policy and what is left of the order's
deadline; its failure is judged here (refused, cut short by the deadline, or failed) and
recorded; its compensation is built only if the step must be undone.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import FailureError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from domain.ids import idempotency_key
    from domain.order import OrderRequest
    from domain.policy import ActivityPolicy
    from ports.contract import CompensationInput, StepResult
    from workflows.order_steps import ORDER_STEPS, OrderStep

from temporal_saga import Compensation, Saga

from workflows.activity_calls import ActivityCalls
from workflows.deadline import Deadline
from workflows.order_failures import DEADLINE_EXCEEDED, StepFailed, describe
from workflows.order_record import OrderRecord


class StepRunner:
    """Runs the steps of one order, each as a step of its saga."""

    def __init__(self, order: OrderRequest, record: OrderRecord, saga: Saga) -> None:
        """Run `order`'s steps in `saga`, keeping `record`."""
        self._order = order
        self._record = record
        self._saga = saga
        self._deadline = Deadline.after(workflow.info().start_time, order.policy.deadline_s)
        self._calls = ActivityCalls(local=order.policy.local_activities)
        self._events = record.telemetry.events

    async def run(self, step: OrderStep[Any]) -> StepResult:
        """Do `step`, its compensation registered first; return what it created.

        Raises:
            StepFailed: The step failed for good, or the deadline came first.
            asyncio.CancelledError: The saga was cancelled or withdrawn meanwhile.
        """
        policy = self._order.policy.for_step(step.name)
        arg = step.build_input(self._order, self._record.status.ids, self._key(step))
        started = workflow.now()
        time_left = self._deadline.time_left()
        if time_left is not None and time_left <= timedelta(0):
            raise self._past_deadline(step.name)
        telemetry = self._record.telemetry
        try:
            created = await self._saga.step(
                step.name,
                lambda: self._do(step, arg, policy, time_left),
                compensation=self.undo(step),
            )
        except FailureError as err:
            # An activity's failure arrives as an ActivityError; a local activity's as its cause.
            if is_cancelled_exception(err):
                telemetry.step_ended(step.name, started, "cancelled")
                raise  # cancelled mid-step: the step may have taken effect, and stays registered
            telemetry.step_ended(step.name, started, "failed")
            if Deadline.cut_short(err, time_left, policy.timeout):
                raise self._past_deadline(step.name) from err
            raise self._record.failed(step.name, *describe(err)) from err
        self._record.step_done(step, created.id, started)
        return created

    def undo(self, step: OrderStep[Any]) -> Compensation:
        """`step`'s compensation; its input is made only if it runs (most sagas undo nothing)."""
        return lambda: self._undo(step)

    async def _do(
        self, step: OrderStep[Any], arg: Any, policy: ActivityPolicy, within: timedelta | None
    ) -> StepResult:
        with self._events.riding(step):
            return await self._calls.call(step.activity, arg, policy, within=within)

    async def _undo(self, step: OrderStep[Any]) -> None:
        arg = CompensationInput(order_id=self._order.order_id, effect_key=self._key(step))
        with self._events.riding():
            await self._calls.call(step.compensation, arg, self._order.policy.compensations)

    def interrupted(self) -> None:
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
                self._saga.add_compensation(step.name, self.undo(step))

    def _key(self, step: OrderStep[Any]) -> str:
        return idempotency_key(workflow.info().workflow_id, step.name)

    def _past_deadline(self, step: str) -> StepFailed:
        reason = f"order not confirmed within {self._order.policy.deadline_s:g} s"
        return self._record.failed(step, DEADLINE_EXCEEDED, reason)
