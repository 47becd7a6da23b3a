"""The `OrderSaga` workflow: reserve, charge, ship, confirm — or undo every step taken, in reverse.

Temporal's event history is the saga's persistence: each step is an activity, and the compensation
stack is rebuilt on replay from that history. Workflow code must stay deterministic, so it does no
I/O itself and takes time and ids only from Temporal.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    import pydantic

    from ordersaga.events import SagaEventType
    from ordersaga.models import (
        ActivityInput,
        Attention,
        ChargePaymentInput,
        CompensationInput,
        ConfirmOrderInput,
        OperatorAction,
        OrderRequest,
        OrderResult,
        PublishEventsInput,
        ReserveInventoryInput,
        Resolution,
        SagaState,
        SagaStatus,
        ScheduleShipmentInput,
        StepResult,
        Withdrawal,
        idempotency_key,
    )
    from ordersaga.policy import ActivityPolicy
    from ordersaga.steps import Compensation, Step

from workflows.telemetry import SagaTelemetry

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

#: The event a step's success makes, and the key under which it names what the step created.
EVENT_AFTER: dict[Step, tuple[SagaEventType, str]] = {
    Step.RESERVE_INVENTORY: (SagaEventType.INVENTORY_RESERVED, "reservation_id"),
    Step.CHARGE_PAYMENT: (SagaEventType.PAYMENT_CHARGED, "charge_id"),
    Step.SCHEDULE_SHIPMENT: (SagaEventType.SHIPPING_SCHEDULED, "shipment_id"),
    Step.CONFIRM_ORDER: (SagaEventType.ORDER_CONFIRMED, "confirmation_id"),
}

#: Events that name an amount, and under which key: the charge, and the confirmed total.
AMOUNT_KEY: dict[Step, str] = {Step.CHARGE_PAYMENT: "amount", Step.CONFIRM_ORDER: "total"}

#: The event a compensation makes once done.
EVENT_UNDONE: dict[Compensation, SagaEventType] = {
    Compensation.RELEASE_INVENTORY: SagaEventType.INVENTORY_RELEASED,
    Compensation.REFUND_PAYMENT: SagaEventType.PAYMENT_REFUNDED,
    Compensation.CANCEL_SHIPMENT: SagaEventType.SHIPMENT_CANCELLED,
    Compensation.CANCEL_ORDER: SagaEventType.ORDER_CANCELLED,
}

#: Publishing the saga's last events retries until the bus takes them, like a compensation.
PUBLISH_POLICY = ActivityPolicy(first_retry_s=1.0, max_attempts=1000)

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

#: The failure type a saga reports when it was cancelled.
CANCELLED = "Cancelled"

#: `ApplicationError.type` of an order not confirmed within its policy's deadline.
DEADLINE_EXCEEDED = "DeadlineExceeded"

#: Sagas started before the order deadline existed have no timer in their history; this patch
#: keeps them replaying as they ran, while new sagas get the deadline.
DEADLINE_PATCH = "order-deadline"


Result = TypeVar("Result")


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
        self._telemetry = SagaTelemetry(request)

    @workflow.query
    def status(self) -> SagaStatus:
        """Where the saga stands, what it has done and what it has undone."""
        return self._status

    @workflow.run
    async def run(self, request: OrderRequest) -> OrderResult:
        """Run the saga to the end: a confirmed order, or a failure after compensating."""
        workflow.logger.info("Order saga started", extra={"order_id": request.order_id})
        self._telemetry.start()
        self._telemetry.count("saga_started")
        self._telemetry.emit(
            SagaEventType.ORDER_SAGA_STARTED,
            customer_id=request.customer_id,
            total=request.total,
            currency=request.currency,
        )
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
            if not isinstance(err, StepFailed):
                self._failed(
                    self._step_in_flight(),
                    ORDER_WITHDRAWN if self._status.withdrawn else CANCELLED,
                    "withdrawn by the customer" if self._status.withdrawn else "cancelled",
                )
            await self._compensate_shielded()
            failure = self._saga_error(err)
            if failure is err:
                raise  # the workflow was cancelled: it ends as cancelled
            raise failure from err
        workflow.logger.info("Order confirmed", extra={"order_id": request.order_id})
        self._telemetry.count("saga_completed")
        self._telemetry.count("saga_revenue", request.total, currency=request.currency)
        self._telemetry.took("saga_duration", workflow.info().start_time, outcome="confirmed")
        await self._publish_unpublished()
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
        self._telemetry.state_changed(state, self._status.failed_step)

    def _step_in_flight(self) -> Step:
        return self._compensation_stack[-1] if self._compensation_stack else Step.RESERVE_INVENTORY

    async def _call(
        self,
        activity: str,
        arg: ActivityInput,
        policy: ActivityPolicy,
        result_type: type[Result] | None = None,
    ) -> Result:
        """Run an activity, carrying the saga's unpublished events for its worker to publish."""
        events = self._telemetry.unpublished()
        result: Result = await workflow.execute_activity(
            activity,
            arg.model_copy(update={"events": events}),
            result_type=result_type,
            start_to_close_timeout=policy.timeout,
            retry_policy=policy.retry_policy(),
        )
        self._telemetry.published(events)
        return result

    async def _publish_unpublished(self) -> None:
        """Publish the events no step is left to carry (at most one activity per saga end)."""
        if self._telemetry.unpublished():
            await self._call(
                "publish_events",
                PublishEventsInput(order_id=self._request.order_id),
                PUBLISH_POLICY,
            )

    async def _run_step(self, step: Step, arg: Any) -> StepResult:
        # Pushed before the call: a step that timed out may still have taken effect.
        self._compensation_stack.append(step)
        self._status.compensations_recorded.append(COMPENSATION_OF[step])
        started = workflow.now()
        try:
            result = await self._call(
                step.value, arg, self._request.policy.for_step(step), StepResult
            )
        except ActivityError as err:
            self._telemetry.took("saga_step_duration", started, step=step.value, outcome="failed")
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
        self._telemetry.took("saga_step_duration", started, step=step.value, outcome="ok")
        self._status.steps_done.append(step)
        event_type, id_key = EVENT_AFTER[step]
        details: dict[str, str | int] = {id_key: result.id}
        if step in AMOUNT_KEY:
            details |= {AMOUNT_KEY[step]: self._request.total, "currency": self._request.currency}
        self._telemetry.emit(event_type, **details)
        self._set_state(STATE_AFTER[step])
        workflow.logger.info(
            "Step done", extra={"order_id": self._request.order_id, "step": step.value}
        )
        return result

    async def _compensate_shielded(self) -> None:
        """Unwind the stack and say so; a further cancellation request cannot cut this short."""
        unwinding = asyncio.create_task(self._unwind())
        while not unwinding.done():
            try:
                await asyncio.shield(unwinding)
            except asyncio.CancelledError:
                workflow.logger.warning(
                    "Cancellation requested while compensating; finishing compensation first",
                    extra={"order_id": self._request.order_id},
                )
        unwinding.result()

    async def _unwind(self) -> None:
        await self._compensate()
        outcome = self._status.state.value.lower()
        self._telemetry.count(
            f"saga_{outcome}",
            failed_step=self._status.failed_step.value if self._status.failed_step else "",
            reason_type=self._status.failure_type or "",
        )
        self._telemetry.took("saga_duration", workflow.info().start_time, outcome=outcome)
        self._telemetry.emit(
            SagaEventType.SAGA_COMPENSATED,
            state=self._status.state.value,
            compensations=",".join(self._status.compensations_run),
        )
        await self._publish_unpublished()

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
                await self._call(compensation.value, undo, policy)
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
        self._telemetry.count("saga_compensations", compensation=compensation.value)
        self._telemetry.emit(
            EVENT_UNDONE[compensation], by_hand=compensation in self._status.resolved_by_hand
        )
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
        self._telemetry.count("saga_compensations_failed", compensation=attention.compensation)
        self._telemetry.count("saga_needs_attention")
        self._telemetry.emit(
            SagaEventType.COMPENSATION_NEEDS_ATTENTION,
            compensation=attention.compensation.value,
            reason=attention.reason,
        )
        # Published now: whoever watches the events must hear of it while the saga waits.
        await self._publish_unpublished()
        await workflow.wait_condition(lambda: self._resolution is not None)
        assert self._resolution is not None
        resolution, self._resolution = self._resolution, None
        self._status.attention = None
        self._telemetry.count("saga_attention_resolved", action=resolution.action.value)
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
        self._telemetry.emit(
            SagaEventType.SAGA_FAILED, step=step.value, reason_type=failure_type, reason=reason
        )
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
