"""What an order saga has done, and what it tells the world of it: one object, one writer.

`OrderRecord` holds the saga's `SagaStatus` and is the only code that changes it. Each of its
methods is one fact of the saga's life, and makes everything that fact means at once: the
status, the saga's events, its metrics, its search attributes and current details, its log
line. So what the `status` query shows and what the saga publishes cannot drift apart.

Deterministic like the workflow it serves: event ids, sequence numbers and times come from the
workflow, and metrics go through the workflow's meter, which records nothing while a history is
being replayed, so a saga is counted once however often it is replayed.

Events ride to the worker in a header of the activities the saga calls (`carrying`), never in
their inputs; the worker's interceptor publishes them. A step's call also carries the step's
own event, which its worker publishes once the step has succeeded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import MetricCounter, MetricHistogramTimedelta, SearchAttributeUpdate
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.events import (
        CarriedEvents,
        SagaEvent,
        SagaEventType,
        StepAnnouncement,
        carrying,
    )
    from domain.order import OrderRequest
    from domain.saga import (
        Attention,
        OperatorAction,
        OrderResult,
        Resolution,
        SagaState,
        SagaStatus,
        Waiting,
    )
    from workflows.order_steps import CONFIRMED, ORDER_STEPS, SEARCHABLE_STATES, OrderStep

from temporal_saga import Decision, is_refusal

from workflows.order_failures import (
    CANCELLED,
    ORDER_REFUSED,
    ORDER_WITHDRAWN,
    StepFailed,
    describe,
    order_refused,
)
from workflows.search_attributes import (
    FAILED_STEP,
    ORDER_STATUS,
    WAITING_MEMO,
    WAITING_ON,
    WAITING_SERVICE,
    WAITING_SINCE,
)

#: How a saga interrupted from outside ends, by its failure type: in a state of its own, so no
#: step's service is blamed for a customer's change of mind or an operator's cancellation.
INTERRUPTED_ENDS = {ORDER_WITHDRAWN: SagaState.WITHDRAWN, CANCELLED: SagaState.CANCELLED}


class OrderRecord:
    """The status of one order saga, changed only here, and everything each change announces.

    Attributes:
        status: Where the saga stands; read it freely, change it through the methods.
    """

    def __init__(self, order_id: str) -> None:
        """Start the record of the saga of order `order_id`."""
        self.status = SagaStatus(order_id=order_id, state=SagaState.STARTED.value)
        self._order: OrderRequest  # from `started`, which comes before every fact but a refusal
        self._log_context = {"order_id": order_id}
        self._sequence = 0
        self._unpublished: list[SagaEvent] = []
        self._waiting: Waiting | None = None  # while an operator must answer
        self._has_waited = False
        self._counters: dict[str, MetricCounter] = {}
        self._histograms: dict[str, MetricHistogramTimedelta] = {}
        # Search attributes are kept current only when the saga was started with them: a
        # server that does not define them would fail every upsert (and so every task).
        self._keeps_search_attributes = (
            workflow.info().typed_search_attributes.get(ORDER_STATUS) is not None
        )

    # --- The facts of a saga's life ----------------------------------------------------------

    def refused(self, problems: list[str]) -> ApplicationError:
        """The saga's input is not an order it may run: it ends before any step, with this."""
        self.status.state = SagaState.REFUSED.value
        self.status.failure_type = ORDER_REFUSED
        self.status.failure_reason = "; ".join(problems)
        workflow.logger.warning(
            "Order refused", extra=self._log_context | {"reason": self.status.failure_reason}
        )
        self._count("saga_refused")
        self._state_changed()
        return order_refused(self.status)

    def started(self, order: OrderRequest) -> None:
        """The saga accepted `order` and begins its steps."""
        self._order = order
        workflow.logger.info("Order saga started", extra=self._log_context)
        self._count("saga_started")
        self._emit(
            SagaEventType.ORDER_SAGA_STARTED,
            customer_id=order.customer_id,
            total=order.total,
            currency=order.currency,
        )

    def step_done(self, step: OrderStep[Any], created_id: str, since: datetime) -> None:
        """`step`, begun at `since`, succeeded, creating `created_id`."""
        self.status.steps_done.append(step.name)
        self.status.ids[step.yields] = created_id
        self.status.state = step.state_after
        # The step's activity published its event (`StepAnnouncement`) once it succeeded.
        self._took("saga_step_duration", since, step=step.name, outcome="ok")
        self._state_changed()
        # Debug: the step's event, its duration metric and the history say the same, and at
        # info these lines were most of a busy worker's logging (docs/performance.md).
        workflow.logger.debug("Step done", extra=self._log_context | {"step": step.name})

    def step_ended(self, step: str, since: datetime, outcome: str) -> None:
        """`step`'s call, begun at `since`, ended without success, as `outcome`.

        `failed` (or refused), or `cancelled`: the saga was withdrawn or cancelled meanwhile,
        which is not the step's service's doing.
        """
        self._took("saga_step_duration", since, step=step, outcome=outcome)

    def failed(self, step: str, failure_type: str, reason: str) -> StepFailed:
        """The saga failed at `step`; it will undo what it did. Raise what this returns."""
        self.status.failed_step = step
        self.status.failure_type = failure_type
        self.status.failure_reason = reason
        self._emit(SagaEventType.SAGA_FAILED, step=step, reason_type=failure_type, reason=reason)
        workflow.logger.warning(
            "Step failed", extra=self._log_context | {"step": step, "type": failure_type}
        )
        return StepFailed(step, failure_type, reason)

    def withdrawn(self, reason: str) -> None:
        """The customer takes the order back, saying `reason`; the saga will undo its steps."""
        self.status.withdrawn = True
        self.status.withdrawal_reason = reason or None
        workflow.logger.info("Order withdrawn", extra=self._log_context)

    def interrupted(self) -> None:
        """The customer withdrew the order, or the saga was cancelled: no step failed."""
        if self.status.withdrawn:
            self.status.failure_type = ORDER_WITHDRAWN
            self.status.failure_reason = "withdrawn by the customer"
        else:
            self.status.failure_type = CANCELLED
            self.status.failure_reason = "cancelled"
        self._emit(
            SagaEventType.SAGA_INTERRUPTED,
            reason_type=self.status.failure_type,
            reason=self.status.failure_reason,
        )
        workflow.logger.info(
            "Saga interrupted", extra=self._log_context | {"type": self.status.failure_type}
        )

    def confirmed(self) -> OrderResult:
        """Every step succeeded: what the saga returns."""
        order = self._order
        workflow.logger.info("Order confirmed", extra=self._log_context)
        self._count("saga_completed")
        self._count("saga_revenue", order.total, currency=order.currency)
        self._took("saga_duration", workflow.info().start_time, outcome="confirmed")
        return OrderResult(
            order_id=order.order_id,
            state=CONFIRMED,
            total=order.total,
            currency=order.currency,
            ids=self.status.ids,
        )

    def compensating(self) -> None:
        """The saga has begun undoing its steps."""
        self.status.state = SagaState.COMPENSATING.value
        self._state_changed()

    def compensated(self, step: OrderStep[Any]) -> None:
        """`step` is undone (or an operator settled its undoing)."""
        self.status.compensations_run.append(step.undo)
        by_hand = step.undo in self.status.resolved_by_hand
        self._count("saga_compensations", compensation=step.undo)
        self._emit(step.undone_event, by_hand=by_hand)
        workflow.logger.info("Compensated", extra=self._log_context | {"compensation": step.undo})

    def needs_attention(self, step: OrderStep[Any], error: BaseException, tries: int) -> None:
        """`step`'s compensation failed `tries` times with `error`; an operator must answer.

        Whoever watches the events must hear of it while the saga waits: publish them.
        """
        failure_type, message = describe(error)
        attention = Attention(
            compensation=step.undo, reason=f"{failure_type}: {message}", attempts=tries
        )
        self.status.attention = attention
        self.status.state = SagaState.NEEDS_ATTENTION.value
        self._waiting = self._waits_on(step, attention)
        workflow.upsert_memo({WAITING_MEMO: self._waiting})
        self._state_changed()
        workflow.logger.error(
            "Compensation needs attention",
            extra=self._log_context | attention.model_dump(mode="json"),
        )
        self._count("saga_compensations_failed", compensation=step.undo)
        self._count("saga_needs_attention")
        self._emit(
            SagaEventType.COMPENSATION_NEEDS_ATTENTION,
            compensation=step.undo,
            reason=attention.reason,
        )

    def answered(self, step: OrderStep[Any], resolution: Resolution) -> Decision:
        """An operator answered about `step`'s compensation; the saga compensates again."""
        self.status.attention = None
        self.status.state = SagaState.COMPENSATING.value
        self._waiting = None
        workflow.upsert_memo({WAITING_MEMO: None})
        if resolution.action is OperatorAction.MARK_DONE:
            self.status.resolved_by_hand[step.undo] = resolution.reason
        self._count("saga_attention_resolved", action=resolution.action.value)
        self._state_changed()
        workflow.logger.info(
            "Operator resolved compensation",
            extra=self._log_context | {"action": resolution.action.value},
        )
        return Decision.SETTLED if resolution.action is OperatorAction.MARK_DONE else Decision.RETRY

    def ended(self, undid_steps: bool) -> None:
        """The saga ends unconfirmed, having undone its steps if `undid_steps`."""
        interrupted = INTERRUPTED_ENDS.get(self.status.failure_type or "")
        self.status.state = (
            interrupted or (SagaState.ABORTED if undid_steps else SagaState.FAILED)
        ).value
        self._state_changed()
        outcome = self.status.state.lower()
        self._count(
            f"saga_{outcome}",
            failed_step=self.status.failed_step or "",
            reason_type=self.status.failure_type or "",
        )
        self._took("saga_duration", workflow.info().start_time, outcome=outcome)
        self._emit(
            SagaEventType.SAGA_COMPENSATED,
            state=self.status.state,
            compensations=",".join(self.status.compensations_run),
        )

    def _waits_on(self, step: OrderStep[Any], attention: Attention) -> Waiting:
        """What the saga waits on, and what it still holds, for lists that ask no saga."""
        held = [
            row
            for row in ORDER_STEPS
            if row.name in self.status.steps_done and row.undo not in self.status.compensations_run
        ]
        charges = any(row.charges_customer for row in held)
        return Waiting(
            order_id=self.status.order_id,
            step=step.name,
            compensation=attention.compensation,
            service=step.port.name,
            attempts=attention.attempts,
            reason=attention.reason,
            since=workflow.now(),
            holds={row.name: self.status.ids[row.yields] for row in held},
            charged=self._order.total if charges else None,
            currency=self._order.currency if charges else None,
        )

    # --- Events: carried by the activities the saga calls ------------------------------------

    @property
    def has_unpublished(self) -> bool:
        """Whether some events wait for an activity call to carry them."""
        return bool(self._unpublished)

    @contextmanager
    def carrying(self, step: OrderStep[Any] | None = None) -> Iterator[None]:
        """Within the block, the activity called carries the unpublished events.

        Args:
            step: The step the activity does, if it is one: it announces the step's event.
        """
        events = list(self._unpublished)
        announced = self._event(step.event, **self._step_details(step)) if step else None
        announces = StepAnnouncement(event=announced, created_as=step.yields) if step else None
        try:
            with carrying(CarriedEvents(events=events, announces=announces)):
                yield
        except BaseException as err:
            # A refused step did nothing and announced nothing: its event's number is reused.
            # Any other failure may follow a success whose event went out: the number stays used.
            if announced and is_refusal(err) and self._sequence == announced.sequence:
                self._sequence -= 1
            raise
        del self._unpublished[: len(events)]

    def _emit(self, event_type: str, **data: str | int | bool) -> None:
        """Make the saga's next event; the next activity call carries it."""
        self._unpublished.append(self._event(event_type, **data))

    def _step_details(self, step: OrderStep[Any]) -> dict[str, str | int]:
        """What a step's event says besides the id of what the step created."""
        details: dict[str, str | int] = {}
        if step.charges_customer:
            details |= {"amount": self._order.total, "currency": self._order.currency}
        if step is ORDER_STEPS[-1]:  # the confirmation names what the order came to
            details |= {"total": self._order.total, "currency": self._order.currency}
        return details

    def _event(self, event_type: str, **data: str | int | bool) -> SagaEvent:
        """The saga's next event, numbered."""
        self._sequence += 1
        return SagaEvent(
            event_id=f"{workflow.info().workflow_id}:{self._sequence}",
            order_id=self.status.order_id,
            sequence=self._sequence,
            type=event_type,
            occurred_at=workflow.now(),
            data=data,
        )

    # --- What the Web UI and the lists show ---------------------------------------------------

    def _state_changed(self) -> None:
        """Keep the saga's current details and `OrderStatus` and `FailedStep` current.

        The details are what the Web UI's workflow page shows in words; the search attributes
        are what its list and `starter.py list` filter on.
        """
        workflow.set_current_details(current_details(self.status))
        if not self._keeps_search_attributes:
            return
        # Only the searchable states are upserted, each in a workflow task of its own: each
        # follows an activity, an update or a wait for one. On the fast path compensations run
        # within the task, so `Compensating` would share it with the end.
        state = self.status.state
        if state not in SEARCHABLE_STATES or (
            state == SagaState.COMPENSATING and self._order.policy.local_activities
        ):
            return
        updates: list[SearchAttributeUpdate[Any]] = [ORDER_STATUS.value_set(state)]
        if self.status.failed_step:
            updates.append(FAILED_STEP.value_set(self.status.failed_step))
        if waiting := self._waiting:
            self._has_waited = True
            updates += [
                WAITING_ON.value_set(waiting.compensation),
                WAITING_SERVICE.value_set(waiting.service),
                WAITING_SINCE.value_set(waiting.since),
            ]
        elif self._has_waited:  # answered: no longer found among the waiting
            updates += [key.value_unset() for key in (WAITING_ON, WAITING_SERVICE, WAITING_SINCE)]
        workflow.upsert_search_attributes(updates)

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
