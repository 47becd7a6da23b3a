"""`configure_logging`: what is written, and what a line below the level costs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from ordersaga import logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
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
