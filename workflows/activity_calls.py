"""How the order saga calls an activity: local or regular, with its timeouts and retries.

One place for the call itself, so a step, a compensation and the saga's last events are all
called the same way, and what the saga reports about a call lives elsewhere (`telemetry`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.policy import ActivityPolicy

#: A local activity that backs off longer than this waits on a timer, outside the workflow task,
#: so that queries, withdrawals and cancellations reach the saga while it waits (the SDK's
#: default is a minute).
LOCAL_RETRY_THRESHOLD = timedelta(seconds=1)

Arg = TypeVar("Arg")
Result = TypeVar("Result")


class ActivityCalls:
    """Calls one saga's activities, all local or all regular, as the order's policy says."""

    def __init__(self, local: bool) -> None:
        """Call activities as local activities if `local` (the fast path)."""
        self._local = local

    async def call(
        self,
        activity: Callable[[Any, Arg], Awaitable[Result]],
        arg: Arg,
        policy: ActivityPolicy,
        *,
        within: timedelta | None = None,
    ) -> Result:
        """Run an activity method to its result, or its last failure.

        Args:
            activity: The activity method (a port's method, or an adapter's).
            arg: Its input.
            policy: Its timeout and retries.
            within: The time all its attempts may take together (the order's deadline).
        """
        if self._local:
            return await workflow.execute_local_activity_method(
                activity,
                arg,
                local_retry_threshold=LOCAL_RETRY_THRESHOLD,
                **activity_options(policy, within),
            )
        return await workflow.execute_activity_method(
            activity, arg, **activity_options(policy, within)
        )


def activity_options(policy: ActivityPolicy, within: timedelta | None = None) -> dict[str, Any]:
    """An activity's timeouts and retries, as local and regular activities both take them."""
    return {
        "start_to_close_timeout": policy.timeout,
        "schedule_to_close_timeout": within,
        "retry_policy": policy.retry_policy(),
    }
