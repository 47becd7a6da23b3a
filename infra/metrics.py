"""Prometheus metrics of a worker: the Temporal SDK's own and the saga's, on one endpoint.

The saga records its figures from workflow code through `workflow.metric_meter()`, which skips
recording while a history is replayed, so each saga is counted once however often it replays.
That meter belongs to the Temporal runtime of the worker's client: a worker serves metrics when
its client is connected with the runtime `infra.runtime.worker_runtime` returns.

Names as Prometheus shows them (no prefix, no `_total` suffix; durations in seconds):

- counters `saga_started`, `saga_refused` (an input the saga would not run, so never
  started), `saga_completed`, `saga_aborted` and `saga_failed` (a step failed; both labelled
  `failed_step`, `reason_type`), `saga_withdrawn` and `saga_cancelled` (no step failed: the
  customer withdrew, or the saga was cancelled), `saga_compensations` and
  `saga_compensations_failed` (label
  `compensation`), `saga_needs_attention`, `saga_attention_resolved` (label `action`),
  `saga_revenue` (label `currency`, minor units of confirmed orders);
- histograms `saga_duration` (label `outcome`) and `saga_step_duration` (labels `step`,
  `outcome`), as `_bucket`, `_sum` and `_count`.

Active sagas are `saga_started` less the five ends (`saga_completed`, `saga_aborted`,
`saga_failed`, `saga_withdrawn`, `saga_cancelled`). Every series also
carries `namespace`, `task_queue` and `workflow_type`. The SDK's own metrics are prefixed
`temporal_` (`temporal_workflow_completed`, `temporal_activity_execution_failed`, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

#: Counters the saga records, by their Prometheus name.
SAGA_COUNTERS = (
    "saga_started",
    "saga_refused",
    "saga_completed",
    "saga_aborted",
    "saga_failed",
    "saga_withdrawn",
    "saga_cancelled",
    "saga_compensations",
    "saga_compensations_failed",
    "saga_needs_attention",
    "saga_attention_resolved",
    "saga_revenue",
)

#: Histograms the saga records, by their Prometheus name (each is exposed as `_bucket`,
#: `_sum` and `_count` series).
SAGA_HISTOGRAMS = ("saga_duration", "saga_step_duration")

#: Bounds of the saga duration histogram, in seconds: one saga alone takes about 0.1 s on the
#: dev server, a retried step adds 2, 4 and 8 s, and the order deadline is 15 minutes.
SAGA_DURATION_BUCKETS_S: Sequence[float] = (
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300, 900,
)  # fmt: skip

#: Bounds of one step's duration, in seconds: a call takes milliseconds, retries take seconds.
STEP_DURATION_BUCKETS_S: Sequence[float] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
)  # fmt: skip


def exposed_names(metric: str) -> tuple[str, ...]:
    """The series names Prometheus shows for one of the saga's metrics."""
    if metric in SAGA_HISTOGRAMS:
        return tuple(f"{metric}_{part}" for part in ("bucket", "sum", "count"))
    return (metric,)
