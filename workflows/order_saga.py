"""The `OrderSaga` workflow: reserve, charge, ship, confirm — or undo every step taken, in reverse.

Temporal's event history is the saga's persistence: each step is an activity, and the compensation
stack is rebuilt on replay from that history. Workflow code must stay deterministic, so it does no
I/O itself and takes time and ids only from Temporal.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    import pydantic

    from ordersaga.models import (
        ChargePaymentInput,
        Compensation,
        CompensationInput,
        ConfirmOrderInput,
        OrderRequest,
        OrderResult,
        RefusalType,
        ReserveInventoryInput,
        SagaState,
        SagaStatus,
        ScheduleShipmentInput,
        Step,
        StepResult,
        idempotency_key,
    )

#: What undoes each step. Pushed on the stack before the step runs.
COMPENSATION_OF: dict[Step, Compensation] = {
    Step.RESERVE_INVENTORY: Compensation.RELEASE_INVENTORY,
    Step.CHARGE_PAYMENT: Compensation.REFUND_PAYMENT,
    Step.SCHEDULE_SHIPMENT: Compensation.CANCEL_SHIPMENT,
    Step.CONFIRM_ORDER: Compensation.CANCEL_ORDER,
}

#: The state a saga is in once a step has succeeded.
STATE_AFTER: dict[Step, SagaState] = {
    Step.RESERVE_INVENTORY: SagaState.INVENTORY_RESERVED,
    Step.CHARGE_PAYMENT: SagaState.PAYMENT_CHARGED,
    Step.SCHEDULE_SHIPMENT: SagaState.SHIPPING_SCHEDULED,
    Step.CONFIRM_ORDER: SagaState.ORDER_CONFIRMED,
}

STEP_TIMEOUT = timedelta(seconds=10)

#: As the business asked: up to 3 retries of transient faults, intervals doubling from 2 s.
#: Business refusals are non-retryable at the source; listing them here keeps that true even
#: if an activity forgets to say so.
STEP_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_attempts=4,
    non_retryable_error_types=[refusal.value for refusal in RefusalType],
)

#: A compensation must not be lost: it retries until it succeeds.
COMPENSATION_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=0,
)


class StepFailed(Exception):
    """A forward step failed for good; carries what the saga reports about it."""

    def __init__(self, step: Step, failure_type: str, reason: str) -> None:
        super().__init__(f"{step.value} failed: {failure_type}: {reason}")
        self.step = step
        self.failure_type = failure_type
        self.reason = reason


# A payload that does not validate as an `OrderRequest` fails the workflow at once (instead of
# retrying the workflow task forever); `hide_input_in_errors` keeps its values out of the message.
@workflow.defn(failure_exception_types=[pydantic.ValidationError])
class OrderSaga:
    """Places one order: every step succeeds, or every step already taken is undone."""

    @workflow.init
    def __init__(self, request: OrderRequest) -> None:
        self._request = request
        self._status = SagaStatus(order_id=request.order_id, state=SagaState.STARTED)
        # Steps whose effect may exist, oldest first; unwound from the end.
        self._compensation_stack: list[Step] = []

    @workflow.query
    def status(self) -> SagaStatus:
        """Where the saga stands, what it has done and what it has undone."""
        return self._status

    @workflow.run
    async def run(self, request: OrderRequest) -> OrderResult:
        """Run the saga to the end: a confirmed order, or a failure after compensating."""
        workflow.logger.info("Order saga started", extra={"order_id": request.order_id})
        try:
            reservation = await self._run_step(
                Step.RESERVE_INVENTORY,
                ReserveInventoryInput(
                    idempotency_key=self._key(Step.RESERVE_INVENTORY),
                    order_id=request.order_id,
                    items=request.items,
                ),
            )
            self._status.reservation_id = reservation.id

            charge = await self._run_step(
                Step.CHARGE_PAYMENT,
                ChargePaymentInput(
                    idempotency_key=self._key(Step.CHARGE_PAYMENT),
                    order_id=request.order_id,
                    customer_id=request.customer_id,
                    amount=request.total,
                    currency=request.currency,
                    payment=request.payment,
                ),
            )
            self._status.charge_id = charge.id

            shipment = await self._run_step(
                Step.SCHEDULE_SHIPMENT,
                ScheduleShipmentInput(
                    idempotency_key=self._key(Step.SCHEDULE_SHIPMENT),
                    order_id=request.order_id,
                    items=request.items,
                    address=request.shipping_address,
                ),
            )
            self._status.shipment_id = shipment.id

            confirmation = await self._run_step(
                Step.CONFIRM_ORDER,
                ConfirmOrderInput(
                    idempotency_key=self._key(Step.CONFIRM_ORDER),
                    order_id=request.order_id,
                    customer_id=request.customer_id,
                    amount=request.total,
                    currency=request.currency,
                    reservation_id=reservation.id,
                    charge_id=charge.id,
                    shipment_id=shipment.id,
                ),
            )
        except BaseException as err:
            # BaseException: a cancelled workflow raises asyncio.CancelledError, which is not an
            # Exception, and a cancelled order must be unwound too.
            await self._compensate_shielded()
            if isinstance(err, StepFailed):
                raise self._saga_error(err) from err
            raise

        workflow.logger.info("Order confirmed", extra={"order_id": request.order_id})
        return OrderResult(
            order_id=request.order_id,
            state=self._status.state,
            total=request.total,
            currency=request.currency,
            reservation_id=reservation.id,
            charge_id=charge.id,
            shipment_id=shipment.id,
            confirmation_id=confirmation.id,
        )

    def _key(self, step: Step) -> str:
        return idempotency_key(workflow.info().workflow_id, step)

    async def _run_step(self, step: Step, arg: Any) -> StepResult:
        # Pushed before the call: a step that timed out may still have taken effect.
        self._compensation_stack.append(step)
        self._status.compensations_recorded.append(COMPENSATION_OF[step])
        try:
            result: StepResult = await workflow.execute_activity(
                step.value,
                arg,
                result_type=StepResult,
                start_to_close_timeout=STEP_TIMEOUT,
                retry_policy=STEP_RETRY_POLICY,
            )
        except ActivityError as err:
            if is_cancelled_exception(err):
                # The workflow was cancelled mid-step; the step may have taken effect.
                raise
            cause = err.cause if isinstance(err.cause, FailureError) else err
            if isinstance(cause, ApplicationError) and cause.non_retryable:
                # A refusal is the service's word that nothing happened: nothing to undo.
                # Otherwise (retries exhausted, timed out) the step may have taken effect,
                # so its compensation stays on the stack.
                self._compensation_stack.pop()
                self._status.compensations_recorded.pop()
            failure_type = (
                cause.type
                if isinstance(cause, ApplicationError) and cause.type
                else type(cause).__name__
            )
            raise self._failed(step, failure_type, cause.message) from err
        self._status.steps_done.append(step)
        self._status.state = STATE_AFTER[step]
        workflow.logger.info(
            "Step done", extra={"order_id": self._request.order_id, "step": step.value}
        )
        return result

    async def _compensate_shielded(self) -> None:
        """Unwind the stack; a further cancellation request cannot cut this short."""
        unwinding = asyncio.create_task(self._compensate())
        while not unwinding.done():
            try:
                await asyncio.shield(unwinding)
            except asyncio.CancelledError:
                workflow.logger.warning(
                    "Cancellation requested while compensating; finishing compensation first",
                    extra={"order_id": self._request.order_id},
                )
        unwinding.result()

    async def _compensate(self) -> None:
        if not self._compensation_stack:
            self._status.state = SagaState.FAILED
            return
        self._status.state = SagaState.COMPENSATING
        for step in reversed(self._compensation_stack):
            compensation = COMPENSATION_OF[step]
            await workflow.execute_activity(
                compensation.value,
                CompensationInput(order_id=self._request.order_id, effect_key=self._key(step)),
                start_to_close_timeout=STEP_TIMEOUT,
                retry_policy=COMPENSATION_RETRY_POLICY,
            )
            self._status.compensations_run.append(compensation)
            workflow.logger.info(
                "Compensated",
                extra={"order_id": self._request.order_id, "compensation": compensation.value},
            )
        self._status.state = SagaState.ABORTED

    def _failed(self, step: Step, failure_type: str, reason: str) -> StepFailed:
        self._status.failed_step = step
        self._status.failure_type = failure_type
        self._status.failure_reason = reason
        workflow.logger.warning(
            "Step failed",
            extra={"order_id": self._request.order_id, "step": step.value, "type": failure_type},
        )
        return StepFailed(step, failure_type, reason)

    def _saga_error(self, failure: StepFailed) -> ApplicationError:
        undone = ", ".join(c.value for c in self._status.compensations_run) or "nothing"
        return ApplicationError(
            f"Order {self._request.order_id} {self._status.state.value.lower()}: "
            f"{failure}; compensated: {undone}",
            {"failed_step": failure.step.value, "state": self._status.state.value},
            type=failure.failure_type,
            non_retryable=True,
        )
