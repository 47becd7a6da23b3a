"""The sagas a broken link holds, and how soon after it heals they move on."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from temporalio.client import Client, WorkflowExecutionStatus

from domain.saga import SagaState
from ops.load import retry_transient
from workflows.search_attributes import ORDER_STATUS

#: How long the sagas held by a fault may take to move on before they are reported as stuck.
MOVE_ON_WITHIN_S = 300.0


@dataclass(frozen=True)
class Recovery:
    """How the sagas held by a fault moved on once it healed.

    Attributes:
        held: The sagas that were running when it healed (but those waiting for an operator).
        seconds: From the heal until the last of them had moved on (an event more in its
            history, or its end); None if some had not within `MOVE_ON_WITHIN_S`.
    """

    held: int
    seconds: float | None

    def __str__(self) -> str:
        moved = f"{self.seconds:.1f} s after" if self.seconds is not None else "not long after"
        return f"{self.held} saga(s) held moved on {moved} the heal"


async def held_sagas(client: Client, task_queue: str) -> dict[str, int]:
    """The running sagas of `task_queue` not waiting for an operator, with their history lengths."""
    query = (
        f"WorkflowType = 'OrderSaga' AND TaskQueue = '{task_queue}' AND "
        f"ExecutionStatus = 'Running' AND {ORDER_STATUS.name} != '{SagaState.NEEDS_ATTENTION}'"
    )

    async def listed() -> list[str]:
        return [execution.id async for execution in client.list_workflows(query)]

    return {
        workflow_id: length
        for workflow_id in await retry_transient(listed)
        if (length := await _history_length(client, workflow_id)) is not None
    }


async def until_moved_on(client: Client, held: dict[str, int], healed: float) -> Recovery:
    """Wait until each saga of `held` has an event more than it had, or has ended.

    Args:
        client: A client that reaches the server whatever the broken links.
        held: The sagas, with the length of their history before the heal (`held_sagas`).
        healed: When the heal was, by `time.monotonic()`.
    """
    waiting = dict(held)
    try:
        async with asyncio.timeout(MOVE_ON_WITHIN_S):
            while waiting:
                for workflow_id, before in list(waiting.items()):
                    length = await _history_length(client, workflow_id)
                    if length is None or length > before:
                        del waiting[workflow_id]
                if waiting:
                    await asyncio.sleep(0.2)
    except TimeoutError:
        return Recovery(len(held), None)
    return Recovery(len(held), time.monotonic() - healed)


async def _history_length(client: Client, workflow_id: str) -> int | None:
    """The length of a running saga's history; None once it has ended."""
    described = await retry_transient(client.get_workflow_handle(workflow_id).describe)
    if described.status is not WorkflowExecutionStatus.RUNNING:
        return None
    return described.raw_description.workflow_execution_info.history_length
