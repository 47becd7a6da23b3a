"""The `OrderSaga` workflow: reserve, charge, ship, confirm — or undo every step taken, in reverse.

Temporal's event history is the saga's persistence: each step is an activity, and the compensation
stack is rebuilt on replay from that history. Workflow code must stay deterministic, so it does no
I/O itself and takes time and ids only from Temporal.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    import pydantic

    from ordersaga.models import (
        Attention,
        ChargePaymentInput,
        CompensationInput,
        ConfirmOrderInput,
        OperatorAction,
        OrderRequest,
        OrderResult,
        ReserveInventoryInput,
        Resolution,
        SagaState,
        SagaStatus,
        ScheduleShipmentInput,
        StepResult,
        Withdrawal,
        idempotency_key,
    )
    from ordersaga.search_attributes import ORDER_STATUS
    from ordersaga.steps import Compensation, Step

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

#: States in which a customer may still withdraw the order.
WITHDRAWABLE = frozenset(
    {
        SagaState.STARTED,
        SagaState.INVENTORY_RESERVED,
        SagaState.PAYMENT_CHARGED,
        SagaState.SHIPPING_SCHEDULED,
    }
)

#: `ApplicationError.type` of an order the customer withdrew.
ORDER_WITHDRAWN = "OrderWithdrawn"

#: `ApplicationError.type` of an order not confirmed within its policy's deadline.
DEADLINE_EXCEEDED = "DeadlineExceeded"

#: Sagas started before the order deadline existed have no timer in their history; this patch
#: keeps them replaying as they ran, while new sagas get the deadline.
DEADLINE_PATCH = "order-deadline"


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
        self._forward: asyncio.Task[OrderResult] | None = None
        self._resolution: Resolution | None = None
        # Search attributes are kept current only when the saga was started with them: a
        # server that does not define them would fail every upsert (and so every task).
        self._keeps_search_attributes = (
            workflow.info().typed_search_attributes.get(ORDER_STATUS) is not None
        )

    @workflow.query
    def status(self) -> SagaStatus:
        """Where the saga stands, what it has done and what it has undone."""
        return self._status

    @workflow.run
    async def run(self, request: OrderRequest) -> OrderResult:
        """Run the saga to the end: a confirmed order, or a failure after compensating."""
        workflow.logger.info("Order saga started", extra={"order_id": request.order_id})
        # The steps run as a task of their own, so a withdrawal can interrupt them.
        self._forward = forward = asyncio.create_task(self._place_order(request))
        if self._status.withdrawn:
            forward.cancel()
        try:
            deadline = request.policy.deadline_s
            if workflow.patched(DEADLINE_PATCH) and deadline is not None:
                await self._before_deadline(forward, deadline)
            result = await forward
            if self._status.withdrawn:
                # Withdrawn in the same moment the last step succeeded: undo that too.
                raise asyncio.CancelledError
        except BaseException as err:
            # BaseException: a cancelled workflow raises asyncio.CancelledError, which is not an
            # Exception, and a cancelled order must be unwound too.
            forward.cancel()
            await self._compensate_shielded()
            failure = self._saga_error(err)
            if failure is err:
                raise  # the workflow was cancelled: it ends as cancelled
            raise failure from err
        workflow.logger.info("Order confirmed", extra={"order_id": request.order_id})
        return result

    @workflow.update
    async def withdraw(self, withdrawal: Withdrawal) -> SagaStatus:
        """The customer takes the order back: everything done so far is undone.

        Returns the saga's status once it has ended (or needs attention).
        """
        workflow.logger.info("Order withdrawn", extra={"order_id": self._request.order_id})
        self._status.withdrawn = True
        if self._forward:
            self._forward.cancel()
        await workflow.wait_condition(
            lambda: (
                self._status.state
                in (SagaState.ABORTED, SagaState.FAILED, SagaState.NEEDS_ATTENTION)
            )
        )
        return self._status

    @withdraw.validator
    def _accept_withdrawal(self, withdrawal: Withdrawal) -> None:
        if self._status.withdrawn:
            raise ValueError(f"order {self._request.order_id} is already withdrawn")
        if self._status.state not in WITHDRAWABLE:
            raise ValueError(
                f"order {self._request.order_id} can no longer be withdrawn: "
                f"its saga is {self._status.state.value}"
            )

    @workflow.update
    async def resolve_compensation(self, resolution: Resolution) -> SagaStatus:
        """An operator's answer to a compensation that needs attention.

        Retry it now, or mark it done by hand (with a reason). Returns the status once the saga
        has taken the answer up.
        """
        self._resolution = resolution
        await workflow.wait_condition(lambda: self._resolution is None)
        return self._status

    @resolve_compensation.validator
    def _accept_resolution(self, resolution: Resolution) -> None:
        if self._status.state is not SagaState.NEEDS_ATTENTION or self._resolution:
            raise ValueError(
                f"order {self._request.order_id} is {self._status.state.value}; "
                "there is no compensation waiting for an operator"
            )

    async def _before_deadline(self, forward: asyncio.Task[OrderResult], seconds: float) -> None:
        """Wait for the steps to finish; past the deadline, fail the step in flight."""
        try:
            await workflow.wait_condition(forward.done, timeout=seconds)
        except TimeoutError:
            in_flight = self._compensation_stack[-1]
            raise self._failed(
                in_flight, DEADLINE_EXCEEDED, f"order not confirmed within {seconds:g} s"
            ) from None

    async def _place_order(self, request: OrderRequest) -> OrderResult:
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
        return OrderResult(
            order_id=request.order_id,
            state=SagaState.ORDER_CONFIRMED,
            total=request.total,
            currency=request.currency,
            reservation_id=reservation.id,
            charge_id=charge.id,
            shipment_id=shipment.id,
            confirmation_id=confirmation.id,
        )

    def _key(self, step: Step) -> str:
        return idempotency_key(workflow.info().workflow_id, step)

    def _set_state(self, state: SagaState) -> None:
        self._status.state = state
        if self._keeps_search_attributes:
            workflow.upsert_search_attributes([ORDER_STATUS.value_set(state.value)])

    async def _run_step(self, step: Step, arg: Any) -> StepResult:
        # Pushed before the call: a step that timed out may still have taken effect.
        self._compensation_stack.append(step)
        self._status.compensations_recorded.append(COMPENSATION_OF[step])
        policy = self._request.policy.for_step(step)
        try:
            result: StepResult = await workflow.execute_activity(
                step.value,
                arg,
                result_type=StepResult,
                start_to_close_timeout=policy.timeout,
                retry_policy=policy.retry_policy(),
            )
        except ActivityError as err:
            if is_cancelled_exception(err):
                # Cancelled mid-step; the step may have taken effect.
                raise
            cause = err.cause if isinstance(err.cause, FailureError) else err
            if isinstance(cause, ApplicationError) and cause.non_retryable:
                # A refusal is the service's word that nothing happened: nothing to undo.
                # Otherwise (retries exhausted, timed out) the step may have taken effect,
                # so its compensation stays on the stack.
                self._compensation_stack.pop()
                self._status.compensations_recorded.pop()
            raise self._failed(step, _failure_type(cause), cause.message) from err
        self._status.steps_done.append(step)
        self._set_state(STATE_AFTER[step])
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
            self._set_state(SagaState.FAILED)
            return
        self._set_state(SagaState.COMPENSATING)
        for step in reversed(self._compensation_stack):
            await self._undo(COMPENSATION_OF[step], step)
        self._set_state(SagaState.ABORTED)

    async def _undo(self, compensation: Compensation, step: Step) -> None:
        """Run one compensation until it succeeds or an operator marks it done by hand."""
        undo = CompensationInput(order_id=self._request.order_id, effect_key=self._key(step))
        policy = self._request.policy.compensations
        while True:
            try:
                await workflow.execute_activity(
                    compensation.value,
                    undo,
                    start_to_close_timeout=policy.timeout,
                    retry_policy=policy.retry_policy(),
                )
                break
            except ActivityError as err:
                cause = err.cause if isinstance(err.cause, FailureError) else err
                resolution = await self._ask_operator(
                    Attention(
                        compensation=compensation,
                        reason=f"{_failure_type(cause)}: {cause.message}",
                        attempts=policy.max_attempts,
                    )
                )
                if resolution.action is OperatorAction.MARK_DONE:
                    self._status.resolved_by_hand[compensation] = resolution.reason
                    break
        self._status.compensations_run.append(compensation)
        workflow.logger.info(
            "Compensated",
            extra={"order_id": self._request.order_id, "compensation": compensation.value},
        )

    async def _ask_operator(self, attention: Attention) -> Resolution:
        """Wait, visibly, for an operator to retry or settle a compensation that keeps failing."""
        self._status.attention = attention
        self._set_state(SagaState.NEEDS_ATTENTION)
        workflow.logger.error(
            "Compensation needs attention",
            extra={"order_id": self._request.order_id, **attention.model_dump(mode="json")},
        )
        await workflow.wait_condition(lambda: self._resolution is not None)
        assert self._resolution is not None
        resolution, self._resolution = self._resolution, None
        self._status.attention = None
        self._set_state(SagaState.COMPENSATING)
        workflow.logger.info(
            "Operator resolved compensation",
            extra={"order_id": self._request.order_id, "action": resolution.action.value},
        )
        return resolution

    def _failed(self, step: Step, failure_type: str, reason: str) -> StepFailed:
        self._status.failed_step = step
        self._status.failure_type = failure_type
        self._status.failure_reason = reason
        workflow.logger.warning(
            "Step failed",
            extra={"order_id": self._request.order_id, "step": step.value, "type": failure_type},
        )
        return StepFailed(step, failure_type, reason)

    def _saga_error(self, err: BaseException) -> BaseException:
        """What the workflow ends with, once the stack is unwound: `err` itself if cancelled."""
        undone = ", ".join(c.value for c in self._status.compensations_run) or "nothing"
        order = f"Order {self._request.order_id} {self._status.state.value.lower()}"
        details = {"state": self._status.state.value, "compensated": undone}
        if isinstance(err, StepFailed):
            return ApplicationError(
                f"{order}: {err}; compensated: {undone}",
                details | {"failed_step": err.step.value},
                type=err.failure_type,
                non_retryable=True,
            )
        if self._status.withdrawn:
            return ApplicationError(
                f"{order}: withdrawn by the customer; compensated: {undone}",
                details,
                type=ORDER_WITHDRAWN,
                non_retryable=True,
            )
        return err


def _failure_type(failure: FailureError) -> str:
    if isinstance(failure, ApplicationError) and failure.type:
        return failure.type
    return type(failure).__name__
