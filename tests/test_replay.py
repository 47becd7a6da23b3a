"""Recorded histories of every saga path replay against today's workflow code.

A change that would break sagas already running (a step added, reordered or removed without
`workflow.patched`) makes the replay raise a non-determinism error here, before it ships.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.record_histories import CURRENT_VERSION, HISTORIES, SAGA_PATHS
from workflows import OrderSaga

RECORDED = sorted(HISTORIES.glob("*/*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"order-{path.stem}", path.read_text())


def test_every_saga_path_has_a_recorded_history_of_the_current_version() -> None:
    assert {path.stem for path in (HISTORIES / CURRENT_VERSION).glob("*.json")} >= set(SAGA_PATHS)


@pytest.mark.parametrize("path", RECORDED, ids=[f"{p.parent.name}/{p.stem}" for p in RECORDED])
async def test_recorded_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=[OrderSaga], data_converter=pydantic_data_converter)

    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)

    assert result.replay_failure is None, result.replay_failure


async def test_without_the_patch_the_deadline_would_break_running_sagas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What `workflow.patched` prevents: sagas started before the deadline existed have no timer
    # in their history, so code that always starts one no longer matches them.
    monkeypatch.setattr(workflow, "patched", lambda patch_id: True)
    replayer = Replayer(workflows=[OrderSaga], data_converter=pydantic_data_converter)

    result = await replayer.replay_workflow(
        load(HISTORIES / "v1" / "confirmed.json"), raise_on_replay_failure=False
    )

    assert result.replay_failure is not None
    assert "nondeterminism" in str(result.replay_failure).lower()
