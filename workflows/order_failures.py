"""How an order saga fails: the failure types it reports, and the error it ends with."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    TimeoutType,
)
from temporalio.exceptions import (
    TimeoutError as TemporalTimeoutError,
)

if TYPE_CHECKING:
    from domain.saga import SagaStatus

#: `ApplicationError.type` of a saga whose input is not an order it may run.
ORDER_REFUSED = "OrderRefused"

#: `ApplicationError.type` of an order the customer withdrew.
ORDER_WITHDRAWN = "OrderWithdrawn"

#: The failure type a saga reports when it was cancelled.
CANCELLED = "Cancelled"

#: `ApplicationError.type` of an order not confirmed within its policy's deadline.
DEADLINE_EXCEEDED = "DeadlineExceeded"


#: Failures that come from outside the steps, cutting them short wherever they are.
INTERRUPTIONS = frozenset({CANCELLED, ORDER_WITHDRAWN, DEADLINE_EXCEEDED})


class StepFailed(Exception):
    """A forward step failed for good; carries what the saga reports about it."""

    def __init__(self, step: str, failure_type: str, reason: str) -> None:
        super().__init__(f"{step} failed: {failure_type}: {reason}")
        self.step = step
        self.failure_type = failure_type
        self.reason = reason


def _unwrapped(error: BaseException) -> BaseException:
    """An `ActivityError`'s cause (what the activity raised), or `error` itself.

    A local activity's failure may arrive either way.
    """
    if isinstance(error, ActivityError) and isinstance(error.cause, FailureError):
        return error.cause
    return error


def describe(error: BaseException) -> tuple[str, str]:
    """What a failure was, as `(type, message)`: an `ActivityError`'s cause, not the wrapper."""
    error = _unwrapped(error)
    failure_type = (
        error.type if isinstance(error, ApplicationError) and error.type else type(error).__name__
    )
    return failure_type, error.message if isinstance(error, FailureError) else str(error)


def timeout_type(error: BaseException) -> TimeoutType | None:
    """Which timeout ended an activity (or a local activity), if one did."""
    error = _unwrapped(error)
    return error.type if isinstance(error, TemporalTimeoutError) else None


def cut_short_by_deadline(
    error: BaseException, within: timedelta | None, attempt_timeout: timedelta
) -> bool:
    """Whether a step's activity ended because the order's deadline came, rather than by itself.

    Either the time all its attempts had (`within`, the deadline) ran out, or, as a local
    activity may report it, an attempt's, where the deadline was the tighter bound.

    Args:
        error: How the activity failed.
        within: The time its attempts were given together when it was called, if bounded.
        attempt_timeout: The time one attempt may take.
    """
    if within is None:
        return False
    timeout = timeout_type(error)
    return timeout == TimeoutType.SCHEDULE_TO_CLOSE or (
        timeout == TimeoutType.START_TO_CLOSE and within <= attempt_timeout
    )


def order_refused(status: SagaStatus) -> ApplicationError:
    """The one line a saga ends with when it refuses its input (`status.failure_reason`)."""
    return ApplicationError(
        f"Order {status.order_id} refused: {status.failure_reason}; nothing was done",
        {"state": status.state},
        type=ORDER_REFUSED,
        non_retryable=True,
    )


def saga_error(err: BaseException, status: SagaStatus) -> BaseException:
    """What the workflow ends with once its steps are undone: `err` itself if cancelled.

    Args:
        err: What ended the steps: a `StepFailed`, or the cancellation of a withdrawn or
            cancelled saga.
        status: The saga's status, after compensating.
    """
    undone = ", ".join(status.compensations_run) or "nothing"
    order = f"Order {status.order_id} {status.state.lower()}"
    details = {"state": status.state, "compensated": undone}
    if isinstance(err, StepFailed):
        return ApplicationError(
            f"{order}: {err}; compensated: {undone}",
            details | {"failed_step": err.step},
            type=err.failure_type,
            non_retryable=True,
        )
    if status.withdrawn:
        return ApplicationError(
            f"Order {status.order_id} withdrawn by the customer; compensated: {undone}",
            details,
            type=ORDER_WITHDRAWN,
            non_retryable=True,
        )
    return err
