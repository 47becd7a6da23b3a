"""An order's deadline, as the time its steps' activities may still take.

The deadline bounds each step's activity (its schedule-to-close timeout) instead of running a
timer of its own: a saga on time records nothing for it. Deterministic: it reads the time from
the workflow only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import FailureError, TimeoutType

from workflows.order_failures import timeout_type


@dataclass(frozen=True)
class Deadline:
    """When an order must be confirmed by, if it must.

    Attributes:
        at: The moment, or None for an order without a deadline.
    """

    at: datetime | None = None

    @classmethod
    def after(cls, start: datetime, seconds: float | None) -> Deadline:
        """The deadline `seconds` after `start` (none if `seconds` is None)."""
        return cls(start + timedelta(seconds=seconds) if seconds is not None else None)

    def time_left(self) -> timedelta | None:
        """How long the steps may still take; None if there is no deadline."""
        return self.at - workflow.now() if self.at else None

    @staticmethod
    def cut_short(err: FailureError, within: timedelta | None, attempt_timeout: timedelta) -> bool:
        """Whether a step's activity ended because the deadline came, rather than by itself.

        Either the time all its attempts had (`within`, the deadline) ran out, or, as a local
        activity may report it, an attempt's, where the deadline was the tighter bound.

        Args:
            err: How the activity failed.
            within: The time its attempts were given together when it was called, if bounded.
            attempt_timeout: The time one attempt may take.
        """
        if within is None:
            return False
        timeout = timeout_type(err)
        return timeout == TimeoutType.SCHEDULE_TO_CLOSE or (
            timeout == TimeoutType.START_TO_CLOSE and within <= attempt_timeout
        )
