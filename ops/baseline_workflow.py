"""`BaselineWorkflow`: four no-op activities in a row.

The yardstick `order-saga bench` measures the saga against: same server, same worker settings,
none of the saga's services or logic.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

#: The four no-op activities, in the order the workflow calls them (one per saga step).
NOOP_ACTIVITIES = ("noop_1", "noop_2", "noop_3", "noop_4")


@workflow.defn
class BaselineWorkflow:
    """Calls each no-op activity once, one after another, like a saga's happy path."""

    @workflow.run
    async def run(self, order_id: str) -> str:
        """Run the four activities; return `order_id`."""
        for name in NOOP_ACTIVITIES:
            await workflow.execute_activity(
                name, order_id, start_to_close_timeout=timedelta(seconds=10)
            )
        return order_id
