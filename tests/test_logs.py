"""`configure_logging`: what is written, what a dropped line costs, what an activity adds."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import structlog
from temporalio import activity, workflow
from temporalio.exceptions import ActivityError, ApplicationError, ApplicationErrorCategory
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from ordersaga import logs
from ordersaga.log_context import ActivityOutcomes


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    # `configure_logging` sets these for the rest of the process.
    switches = {name: getattr(logging, name) for name in logs.UNUSED_RECORD_FIELDS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in switches.items():
        setattr(logging, name, value)
    structlog.reset_defaults()


def test_lines_below_the_level_are_dropped_before_any_processor_runs(
    monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    processed: list[str] = []

    def spy(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        processed.append(event["event"])
        return event

    monkeypatch.setattr(logs, "temporal_fields", spy)
    stream = io.StringIO()
    logs.configure_logging(logging.INFO, json=True, stream=stream)
    log = structlog.get_logger("test")

    log.debug("below the level", order_id="o-1")
    log.info("at the level", order_id="o-1")

    assert processed == ["at the level"]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["event"], line["level"], line["order_id"]) for line in lines] == [
        ("at the level", "info", "o-1")
    ]


async def test_a_line_logged_in_an_activity_names_its_saga_and_try(
    restore_logging: None,
) -> None:
    stream = io.StringIO()
    logs.configure_logging(logging.INFO, json=True, stream=stream)
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        environment.info,
        workflow_id="order-o-7",
        workflow_run_id="run-1",
        activity_type="charge_payment",
        attempt=3,
    )

    async def charge() -> None:
        structlog.get_logger("test").info("charging")

    await environment.run(charge)
    structlog.get_logger("test").info("outside any activity")

    inside, outside = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert {key: inside.get(key) for key in ("order_id", "workflow_id", "run_id")} == {
        "order_id": "o-7",
        "workflow_id": "order-o-7",
        "run_id": "run-1",
    }
    assert (inside["activity_type"], inside["attempt"]) == ("charge_payment", 3)
    assert "activity_type" not in outside and "order_id" not in outside


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
