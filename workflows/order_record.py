"""What an order saga has done and where it stands: its `SagaStatus`, changed in one place.

Every change to the status goes through `OrderRecord`, which tells the saga's telemetry of it,
so that what the `status` query shows and what the saga publishes (events, search attributes,
metrics, logs) cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.order import OrderRequest
    from domain.saga import (
        Attention,
        OperatorAction,
        OrderResult,
        Resolution,
        SagaState,
        SagaStatus,
    )
    from workflows.order_steps import CONFIRMED, OrderStep

from temporal_saga import Decision

from workflows.order_failures import (
    CANCELLED,
    ORDER_REFUSED,
    ORDER_WITHDRAWN,
    StepFailed,
    describe,
    order_refused,
)
from workflows.telemetry import SagaTelemetry

#: How a saga interrupted from outside ends, by its failure type: in a state of its own, so no
#: step's service is blamed for a customer's change of mind or an operator's cancellation.
INTERRUPTED_ENDS = {ORDER_WITHDRAWN: SagaState.WITHDRAWN, CANCELLED: SagaState.CANCELLED}


class OrderRecord:
    """The status of one order saga, and its telemetry, which reports every change of it.

    Attributes:
        status: Where the saga stands; read it freely, change it through the methods.
        telemetry: What the saga tells the world.
    """

    def __init__(self, order_id: str) -> None:
        """Start the record of the saga of order `order_id`."""
        self.status = SagaStatus(order_id=order_id, state=SagaState.STARTED.value)
        self.telemetry = SagaTelemetry(self.status)

    def refused(self, problems: list[str]) -> ApplicationError:
        """The saga's input is not an order it may run: it ends before any step, with this."""
        self.status.state = SagaState.REFUSED.value
        self.status.failure_type = ORDER_REFUSED
        self.status.failure_reason = "; ".join(problems)
        self.telemetry.refused()
        return order_refused(self.status)

    def step_done(self, step: OrderStep[Any], created_id: str, since: datetime) -> None:
        """`step`, begun at `since`, succeeded, creating `created_id`."""
        self.status.steps_done.append(step.name)
        self.status.ids[step.yields] = created_id
        self.status.state = step.state_after
        self.telemetry.step_done(step, since)

    def failed(self, step: str, failure_type: str, reason: str) -> StepFailed:
        """The saga failed at `step`; it will undo what it did. Raise what this returns."""
        self.status.failed_step = step
        self.status.failure_type = failure_type
        self.status.failure_reason = reason
        self.telemetry.step_failed()
        return StepFailed(step, failure_type, reason)

    def interrupted(self) -> None:
        """The customer withdrew the order, or the saga was cancelled: no step failed."""
        if self.status.withdrawn:
            self.status.failure_type = ORDER_WITHDRAWN
            self.status.failure_reason = "withdrawn by the customer"
        else:
            self.status.failure_type = CANCELLED
            self.status.failure_reason = "cancelled"
        self.telemetry.interrupted()

    def confirmed(self, order: OrderRequest) -> OrderResult:
        """Every step of `order` succeeded: what the saga returns."""
        return OrderResult(
            order_id=order.order_id,
            state=CONFIRMED,
            total=order.total,
            currency=order.currency,
            ids=self.status.ids,
        )

    def entered(self, state: SagaState) -> None:
        """The saga is now in `state` (compensating, or one of its ends)."""
        self.status.state = state.value
        self.telemetry.state_changed()

    def ended(self, undid_steps: bool) -> None:
        """The saga ends unconfirmed, having undone its steps if `undid_steps`."""
        interrupted = INTERRUPTED_ENDS.get(self.status.failure_type or "")
        self.entered(interrupted or (SagaState.ABORTED if undid_steps else SagaState.FAILED))
        self.telemetry.unwound()

    def compensated(self, step: OrderStep[Any]) -> None:
        """`step` is undone (or an operator settled its undoing)."""
        self.status.compensations_run.append(step.undo)
        self.telemetry.compensated(step, by_hand=step.undo in self.status.resolved_by_hand)

    async def needs_attention(self, step: OrderStep[Any], error: BaseException, tries: int) -> None:
        """`step`'s compensation failed `tries` times with `error`; an operator must answer."""
        failure_type, message = describe(error)
        self.status.attention = Attention(
            compensation=step.undo, reason=f"{failure_type}: {message}", attempts=tries
        )
        self.status.state = SagaState.NEEDS_ATTENTION.value
        await self.telemetry.needs_attention(self.status.attention)

    def answered(self, step: OrderStep[Any], resolution: Resolution) -> Decision:
        """An operator answered about `step`'s compensation; the saga compensates again."""
        self.status.attention = None
        self.status.state = SagaState.COMPENSATING.value
        self.telemetry.attention_resolved(resolution.action)
        if resolution.action is OperatorAction.MARK_DONE:
            self.status.resolved_by_hand[step.undo] = resolution.reason
            return Decision.SETTLED
        return Decision.RETRY
