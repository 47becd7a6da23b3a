"""The dashboard's figures, as the business asked for them, from the monitoring store."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ordersaga.consumers.monitoring import MonitoringStore, Outcome, SagaRecord


@dataclass(frozen=True)
class Figures:
    """Saga health, performance and business figures over a window of time.

    The window is the interval (`now - window`, `now`]. "Ended" means the sagas that ended in
    it (confirmed, or finished compensating); rates are over those, and are None when none
    ended, rather than a misleading 0 % or 100 %.

    Attributes:
        now: The end of the window.
        window: Its length.
        started: Sagas that started in the window.
        ended: Sagas that ended in the window.
        confirmed: Of those, how many were confirmed.
        aborted: ... ended Aborted (a step failed; compensated).
        failed: ... ended Failed (a step failed; nothing to undo).
        withdrawn: ... ended Withdrawn (the customer took the order back; compensated).
        cancelled: ... ended Cancelled (cancelled from outside; compensated).
        compensated: ... ran at least one compensation.
        active: Sagas running at `now` (started, not ended), whenever they started.
        needs_attention: Of those, how many wait for an operator.
        success_rate: confirmed / ended.
        error_rate: (aborted + failed) / ended: withdrawals and cancellations are nobody's
            fault, and count only as ended.
        compensation_rate: compensated / ended.
        average_duration_s: Mean of start-to-end seconds over the ended sagas (all outcomes).
        p95_latency_s: 95th percentile of the same durations, by nearest rank: the smallest
            duration that at least 95 % of them do not exceed.
        orders_per_min: started / window in minutes.
        revenue_per_hour: Per currency, the totals of the confirmed sagas (minor units) /
            window in hours. Currencies are never added together.
    """

    now: datetime
    window: timedelta
    started: int
    ended: int
    confirmed: int
    aborted: int
    failed: int
    withdrawn: int
    cancelled: int
    compensated: int
    active: int
    needs_attention: int
    success_rate: float | None
    error_rate: float | None
    compensation_rate: float | None
    average_duration_s: float | None
    p95_latency_s: float | None
    orders_per_min: float
    revenue_per_hour: dict[str, float]


def figures(store: MonitoringStore, now: datetime, window: timedelta) -> Figures:
    """The figures for the window (`now - window`, `now`] (see `Figures` for each definition)."""
    start = now - window
    started = len(store.started_between(start, now))
    ended = store.ended_between(start, now)
    active = store.active_at(now)
    counts = {outcome: sum(r.outcome is outcome for r in ended) for outcome in Outcome}
    compensated = sum(bool(r.compensations) for r in ended)
    durations = sorted(d.total_seconds() for r in ended if (d := r.duration) is not None)
    hours = window / timedelta(hours=1)
    return Figures(
        now=now,
        window=window,
        started=started,
        ended=len(ended),
        confirmed=counts[Outcome.CONFIRMED],
        aborted=counts[Outcome.ABORTED],
        failed=counts[Outcome.FAILED],
        withdrawn=counts[Outcome.WITHDRAWN],
        cancelled=counts[Outcome.CANCELLED],
        compensated=compensated,
        active=len(active),
        needs_attention=sum(r.needs_attention for r in active),
        success_rate=_ratio(counts[Outcome.CONFIRMED], len(ended)),
        error_rate=_ratio(counts[Outcome.ABORTED] + counts[Outcome.FAILED], len(ended)),
        compensation_rate=_ratio(compensated, len(ended)),
        average_duration_s=sum(durations) / len(durations) if durations else None,
        p95_latency_s=percentile(durations, 95),
        orders_per_min=started / (hours * 60),
        revenue_per_hour={c: total / hours for c, total in _revenue(ended).items()},
    )


def percentile(ordered: Sequence[float], pct: float) -> float | None:
    """The nearest-rank `pct` percentile of `ordered` (sorted), or None if it is empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _revenue(ended: list[SagaRecord]) -> dict[str, int]:
    totals: defaultdict[str, int] = defaultdict(int)
    for record in ended:
        if record.outcome is Outcome.CONFIRMED and record.currency and record.total:
            totals[record.currency] += record.total
    return dict(sorted(totals.items()))
