"""Shared fixtures: real Temporal servers from the installed binaries, nothing downloaded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from ordersaga.devserver import DevServer, free_port, installed_binary
from ordersaga.temporal import connect


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server: timers and retry backoff pass at once."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    async with env:
        yield env


@pytest.fixture(scope="session")
async def dev_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    """The Temporal CLI dev server on a SQLite file, tuned as the demo runs it."""
    server = DevServer(port=free_port(), db_file=tmp_path_factory.mktemp("temporal") / "t.db")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def client(dev_server: DevServer) -> Client:
    """A client of the dev server that speaks the saga's pydantic models."""
    return await connect(dev_server.address, "default")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh folder for one test's databases."""
    return tmp_path
