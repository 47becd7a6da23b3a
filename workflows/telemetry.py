"""What an order saga tells the outside world: one call per fact.

Each call (step done, step failed, compensated, needs attention, ended) makes that fact's
event, metrics, search attributes and log line together.

Deterministic like the workflow it serves: event ids, sequence numbers and times come from the
workflow, and metrics go through the workflow's meter, which records nothing while a history is
being replayed, so a saga is counted once however often it is replayed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import MetricCounter, MetricHistogramTimedelta

with workflow.unsafe.imports_passed_through():
    from domain.events import SagaEventType
    from domain.order import OrderRequest
    from domain.saga import Attention, OperatorAction, SagaState, SagaStatus
    from domain.search_attributes import FAILED_STEP, ORDER_STATUS
    from workflows.order_steps import SEARCHABLE_STATES, OrderStep

from workflows.saga_events import SagaEvents


class SagaTelemetry:
    """The events, metrics, search attributes and logs of one order saga.

    It reads the saga's `status` (which the workflow keeps) rather than being told it again.
    """

    def __init__(self, status: SagaStatus) -> None:
        self._request: OrderRequest  # from `started`, which comes before every other fact
        self._status = status
        self._log_context = {"order_id": status.order_id}
        self.events = SagaEvents(status.order_id)
        self._counters: dict[str, MetricCounter] = {}
        self._histograms: dict[str, MetricHistogramTimedelta] = {}
        # Search attributes are kept current only when the saga was started with them: a
        # server that does not define them would fail every upsert (and so every task).
        self._keeps_search_attributes = (
            workflow.info().typed_search_attributes.get(ORDER_STATUS) is not None
        )

    # --- The facts of a saga's life ----------------------------------------------------------

    def refused(self) -> None:
        """The saga's input was refused (`status.failure_reason` says why); nothing was done."""
        workflow.logger.warning(
            "Order refused", extra=self._log_context | {"reason": self._status.failure_reason}
        )
        self._count("saga_refused")
        self.state_changed()

    def started(self, request: OrderRequest) -> None:
        """The saga accepted `request` and begins its steps."""
        self._request = request
        workflow.logger.info("Order saga started", extra=self._log_context)
        self._count("saga_started")
        self.events.started(request)

    def step_done(self, step: OrderStep[Any], since: datetime) -> None:
        """`step`, begun at `since`, succeeded; the saga is now in `status.state`."""
        # The step's activity published its event (`StepAnnouncement`) once it succeeded.
        self._took("saga_step_duration", since, step=step.name, outcome="ok")
        self.state_changed()
        # Debug: the step's event, its duration metric and the history say the same, and at
        # info these lines were most of a busy worker's logging (docs/performance.md).
        workflow.logger.debug("Step done", extra=self._log_context | {"step": step.name})

    def step_ended(self, step: str, since: datetime, outcome: str) -> None:
        """`step`'s call ended without success, as `outcome`.

        `failed` (or refused), or `cancelled`: the saga was withdrawn or cancelled meanwhile,
        which is not the step's service's doing.
        """
        self._took("saga_step_duration", since, step=step, outcome=outcome)

    def step_failed(self) -> None:
        """The saga failed at `status.failed_step`; it will undo what it did."""
        status = self._status
        self.events.emit(
            SagaEventType.SAGA_FAILED,
            step=status.failed_step or "",
            reason_type=status.failure_type or "",
            reason=status.failure_reason or "",
        )
        workflow.logger.warning(
            "Step failed",
            extra=self._log_context | {"step": status.failed_step, "type": status.failure_type},
        )

    def interrupted(self) -> None:
        """The customer withdrew the order, or the saga was cancelled; it will undo its steps."""
        status = self._status
        self.events.emit(
            SagaEventType.SAGA_INTERRUPTED,
            reason_type=status.failure_type or "",
            reason=status.failure_reason or "",
        )
        workflow.logger.info(
            "Saga interrupted", extra=self._log_context | {"type": status.failure_type}
        )

    def state_changed(self) -> None:
        """Keep the saga's current details and `OrderStatus` and `FailedStep` current.

        The details are what the Web UI's workflow page shows in words; the search attributes
        are what its list and `starter.py list` filter on.
        """
        workflow.set_current_details(current_details(self._status))
        if not self._keeps_search_attributes:
            return
        # Only the searchable states are upserted, each in a workflow task of its own: each
        # follows an activity, an update or a wait for one. On the fast path compensations run
        # within the task, so `Compensating` would share it with the end.
        state = self._status.state
        if state not in SEARCHABLE_STATES or (
            state == SagaState.COMPENSATING and self._request.policy.local_activities
        ):
            return
        updates = [ORDER_STATUS.value_set(self._status.state)]
        if self._status.failed_step:
            updates.append(FAILED_STEP.value_set(self._status.failed_step))
        workflow.upsert_search_attributes(updates)

    def compensated(self, step: OrderStep[Any], by_hand: bool) -> None:
        """`step` is undone (by an operator, if `by_hand`)."""
        self._count("saga_compensations", compensation=step.undo)
        self.events.emit(step.undone_event, by_hand=by_hand)
        workflow.logger.info("Compensated", extra=self._log_context | {"compensation": step.undo})

    async def needs_attention(self, attention: Attention) -> None:
        """A compensation keeps failing; the saga, now `NeedsAttention`, waits for an operator.

        Publishes the events at once: whoever watches them must hear of it while the saga waits.
        """
        self.state_changed()
        workflow.logger.error(
            "Compensation needs attention",
            extra=self._log_context | attention.model_dump(mode="json"),
        )
        self._count("saga_compensations_failed", compensation=attention.compensation)
        self._count("saga_needs_attention")
        self.events.emit(
            SagaEventType.COMPENSATION_NEEDS_ATTENTION,
            compensation=attention.compensation,
            reason=attention.reason,
        )
        await self.events.publish_unpublished()

    def attention_resolved(self, action: OperatorAction) -> None:
        """An operator answered; the saga is compensating again."""
        self._count("saga_attention_resolved", action=action.value)
        self.state_changed()
        workflow.logger.info(
            "Operator resolved compensation", extra=self._log_context | {"action": action.value}
        )

    def confirmed(self) -> None:
        """Every step succeeded."""
        workflow.logger.info("Order confirmed", extra=self._log_context)
        self._count("saga_completed")
        self._count("saga_revenue", self._request.total, currency=self._request.currency)
        self._took("saga_duration", workflow.info().start_time, outcome="confirmed")

    def unwound(self) -> None:
        """The saga ended badly, in `status.state`, after undoing what it had done."""
        status = self._status
        outcome = status.state.lower()
        self._count(
            f"saga_{outcome}",
            failed_step=status.failed_step or "",
            reason_type=status.failure_type or "",
        )
        self._took("saga_duration", workflow.info().start_time, outcome=outcome)
        self.events.emit(
            SagaEventType.SAGA_COMPENSATED,
            state=status.state,
            compensations=",".join(status.compensations_run),
        )

    # --- Metrics (see the docs' list of saga metrics) -----------------------------------------

    def _count(self, name: str, amount: int = 1, **attributes: str) -> None:
        if name not in self._counters:
            self._counters[name] = workflow.metric_meter().create_counter(name)
        counter = self._counters[name]
        if attributes:
            counter = counter.with_additional_attributes(attributes)
        counter.add(amount)

    def _took(self, name: str, since: datetime, **attributes: str) -> None:
        if name not in self._histograms:
            meter = workflow.metric_meter()
            self._histograms[name] = meter.create_histogram_timedelta(name, unit="s")
        histogram = self._histograms[name]
        if attributes:
            histogram = histogram.with_additional_attributes(attributes)
        histogram.record(max(workflow.now() - since, timedelta(0)))


def current_details(status: SagaStatus) -> str:
    """Where the saga stands, in a few lines of Markdown, as the Web UI's workflow page shows it.

    Made only of state, step and compensation names and failure text, none of which carries
    personal data (docs/observability.md).
    """
    lines = [f"**{status.state}**"]
    if status.failure_type:
        failed = f"{status.failed_step} failed: " if status.failed_step else ""
        lines.append(f"{failed}{status.failure_type}: {status.failure_reason}")
    if attention := status.attention:
        lines.append(
            f"Waiting for an operator: {attention.compensation} failed {attention.attempts} "
            f"times ({attention.reason})"
        )
    lines.append(f"Done: {', '.join(status.steps_done) or 'nothing'}")
    if status.compensations_run:
        lines.append(f"Undone: {', '.join(status.compensations_run)}")
    return "\n\n".join(lines)
