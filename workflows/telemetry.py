"""What a saga tells the outside world as it goes: events, metrics and search attributes.

Deterministic like the workflow it serves: event ids, sequence numbers and times come from the
workflow, and metrics go through the workflow's meter, which records nothing while a history is
being replayed, so a saga is counted once however often it is replayed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import MetricCounter, MetricHistogramTimedelta

with workflow.unsafe.imports_passed_through():
    from ordersaga.events import SagaEvent, SagaEventType
    from ordersaga.models import OrderRequest, SagaState
    from ordersaga.search_attributes import FAILED_STEP, ORDER_STATUS
    from ordersaga.steps import Step

#: Events of one saga are published with the activities that carry them; sagas started before
#: events existed have no final publishing activity in their history, so this patch keeps them
#: replaying as they ran.
EVENTS_PATCH = "saga-events"


class SagaTelemetry:
    """The events, metrics and search attributes of one saga."""

    def __init__(self, request: OrderRequest) -> None:
        self._order_id = request.order_id
        self._sequence = 0
        self._unpublished: list[SagaEvent] = []
        self._counters: dict[str, MetricCounter] = {}
        self._histograms: dict[str, MetricHistogramTimedelta] = {}
        # Search attributes are kept current only when the saga was started with them: a
        # server that does not define them would fail every upsert (and so every task).
        self._keeps_search_attributes = (
            workflow.info().typed_search_attributes.get(ORDER_STATUS) is not None
        )
        self.publishes_events = False

    def start(self) -> None:
        """Decide, once and at the same point of every run, whether this saga publishes events."""
        self.publishes_events = workflow.patched(EVENTS_PATCH)

    # --- Events ------------------------------------------------------------------------------

    def emit(self, event_type: SagaEventType, **data: str | int | bool) -> None:
        """Make the next event; it goes out with the next activity the saga runs."""
        self._sequence += 1
        self._unpublished.append(
            SagaEvent(
                event_id=f"{workflow.info().workflow_id}:{self._sequence}",
                order_id=self._order_id,
                sequence=self._sequence,
                type=event_type,
                occurred_at=workflow.now(),
                data=data,
            )
        )

    def unpublished(self) -> list[SagaEvent]:
        """Every event no activity has yet delivered, oldest first (none if events are off).

        Each activity carries all of them until one succeeds: a redelivered event is harmless
        (same id), a lost one is not.
        """
        return list(self._unpublished) if self.publishes_events else []

    def published(self, events: list[SagaEvent]) -> None:
        """`events`, the oldest unpublished ones, were delivered by an activity that succeeded."""
        del self._unpublished[: len(events)]

    # --- Search attributes -------------------------------------------------------------------

    def state_changed(self, state: SagaState, failed_step: Step | None) -> None:
        """Keep the `OrderStatus` and `FailedStep` search attributes current."""
        if not self._keeps_search_attributes:
            return
        updates = [ORDER_STATUS.value_set(state.value)]
        if failed_step:
            updates.append(FAILED_STEP.value_set(failed_step.value))
        workflow.upsert_search_attributes(updates)

    # --- Metrics -----------------------------------------------------------------------------

    def count(self, name: str, amount: int = 1, **attributes: str) -> None:
        """Add to the counter `name` (see the README's list of saga metrics)."""
        if name not in self._counters:
            self._counters[name] = workflow.metric_meter().create_counter(name)
        counter = self._counters[name]
        if attributes:
            counter = counter.with_additional_attributes(attributes)
        counter.add(amount)

    def took(self, name: str, since: datetime, **attributes: str) -> None:
        """Record in the histogram `name` the time from `since` to now."""
        if name not in self._histograms:
            meter = workflow.metric_meter()
            self._histograms[name] = meter.create_histogram_timedelta(name, unit="s")
        histogram = self._histograms[name]
        if attributes:
            histogram = histogram.with_additional_attributes(attributes)
        histogram.record(max(workflow.now() - since, timedelta(0)))
