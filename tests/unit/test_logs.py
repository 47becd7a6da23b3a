"""`configure_logging`: what is written, what a dropped line costs, what an activity adds."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from typing import Any

import pytest
import structlog
from temporalio.testing import ActivityEnvironment

from infra import logs


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
