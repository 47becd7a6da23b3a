"""What the worker logs of an activity's end: a refusal in one line, a fault with its traceback."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.exceptions import ActivityError, ApplicationError, ApplicationErrorCategory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from infra import logs
from infra.log_context import ActivityOutcomes


@activity.defn(name="charge_payment")
async def refuse_or_fail(benign: bool) -> None:
    category = ApplicationErrorCategory.BENIGN if benign else ApplicationErrorCategory.UNSPECIFIED
    raise ApplicationError(
        "card declined", type="CardDeclined", non_retryable=True, category=category
    )


@workflow.defn(sandboxed=False)
class CallOnce:
    @workflow.run
    async def run(self, benign: bool) -> None:
        with contextlib.suppress(ActivityError):
            await workflow.execute_activity(
                refuse_or_fail, benign, start_to_close_timeout=timedelta(seconds=5)
            )


@pytest.mark.parametrize("benign", [True, False], ids=["refusal", "fault"])
async def test_a_refusal_is_one_line_without_a_traceback_and_a_fault_keeps_its_own(
    benign: bool, time_skipping_env: WorkflowEnvironment, restore_logging: None
) -> None:
    stream = io.StringIO()
    logs.configure_logging(logging.INFO, json=True, stream=stream)
    queue = f"logs-{benign}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[CallOnce],
        activities=[refuse_or_fail],
        interceptors=[ActivityOutcomes()],
    ):
        await time_skipping_env.client.execute_workflow(
            CallOnce.run, benign, id=f"logs-{uuid.uuid4()}", task_queue=queue
        )

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    about = [line for line in lines if line.get("activity_type") == "charge_payment"]
    if benign:
        assert [(line["event"], line["level"], line["refusal"]) for line in about] == [
            ("activity refused", "info", "CardDeclined")
        ]
        assert "Traceback" not in stream.getvalue()
    else:
        assert [line["level"] for line in about] == ["warning"]
        assert "CardDeclined: card declined" in about[0]["exception"]
