"""The current build's recorded histories, one per saga path, replay against the saga's code.

Sagas are PINNED to the build that started them, so only this build's own histories must
replay here: a change to what the saga does fails this replay, and is shipped as a new build
(its id derives from the code) with a re-recorded set (`python -m tests.support.record_histories`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from infra.deployment import build_id
from tests.support.record_histories import HISTORIES, RECORDED_BUILD, SAGA_PATHS
from workflows import OrderSaga, order_steps

RECORDED = sorted(HISTORIES.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    history = json.loads(path.read_text())
    started = history["events"][0]["workflowExecutionStartedEventAttributes"]
    return WorkflowHistory.from_json(started["workflowId"], history)


async def replay(path: Path) -> Exception | None:
    replayer = Replayer(workflows=[OrderSaga], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    return result.replay_failure


def test_every_saga_path_has_a_recorded_history() -> None:
    assert {path.stem for path in RECORDED} == set(SAGA_PATHS)


def test_the_histories_are_the_current_builds() -> None:
    recorded = RECORDED_BUILD.read_text().strip()
    assert recorded == build_id(), (
        f"the saga's code is build {build_id()}, its histories were recorded by {recorded}: "
        "record them again with `python -m tests.support.record_histories`"
    )


@pytest.mark.parametrize("path", RECORDED, ids=[path.stem for path in RECORDED])
async def test_recorded_history_replays(path: Path) -> None:
    assert await replay(path) is None


async def test_a_change_to_the_sagas_commands_fails_the_replay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Shipping before payment: the confirmed saga's history has the charge second.
    first, second, third, *rest = order_steps.ORDER_STEPS
    monkeypatch.setattr(order_steps, "ORDER_STEPS", (first, third, second, *rest))

    failure = await replay(HISTORIES / "confirmed.json")

    assert failure is not None
    assert "nondeterminism" in str(failure).lower()
