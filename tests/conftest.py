"""Shared fixtures: real Temporal servers from the installed binaries, nothing downloaded."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest
import structlog
from hypothesis.configuration import set_hypothesis_home_dir
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.http import create_http_client
from infra import logs
from infra.devserver import DevServer, dev_server_in, installed_binary
from infra.eventbus import EventBus, open_event_bus
from infra.keyring import ensure_key_file
from infra.settings import ENV_FILE_VARIABLE, ServiceUrls
from infra.sockets import free_port
from infra.temporal import connect
from ops.stack import current_worker, services_process
from tests.support.api_process import Api, running_api
from tests.support.service_state import Services
from tests.support.services_fixture import running_services
from tests.support.starter_runner import StarterRunner


@pytest.fixture(scope="session", autouse=True)
def payload_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A payload keyring made for the session: every client and worker encrypts with it.

    Set in the environment, so that worker and starter processes the tests start use it too.
    """
    keys = ensure_key_file(tmp_path_factory.mktemp("keys") / "codec-keys", "test-k1")
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("CODEC_KEY_FILE", str(keys))
        # A demo running beside the tests must not lend them its settings file.
        environment.setenv(ENV_FILE_VARIABLE, "")
        yield keys


# Hypothesis keeps its example database and caches in the machine's temporary folder, not in
# `.hypothesis/` of the folder the suite runs from; set as the suite loads, before any test
# module asks for them.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "order-saga-hypothesis")

#: What tools of the developer's own keep in the checkout, and is no test's doing.
NOT_WATCHED = frozenset(
    {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"}
)


def files_under(folder: Path) -> dict[Path, tuple[int, int]]:
    """Each file under `folder` (but in `NOT_WATCHED`), with its size and modification time."""
    found: dict[Path, tuple[int, int]] = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in NOT_WATCHED and not d.endswith(".egg-info")]
        for name in files:
            path = Path(root, name)
            with contextlib.suppress(FileNotFoundError):  # a file another process just removed
                stat = path.stat()
                found[path] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture(scope="session", autouse=True)
def writes_nothing_outside_its_folders() -> Iterator[None]:
    """The suite writes only in pytest's temporary folders: not in the checkout, not in the
    folder it runs from (where a demo keeps `data/`). Bench, chaos and the workers of the tests
    run on stacks of their own; a file written here would be a phantom in someone's figures."""
    watched = {Path(__file__).resolve().parent.parent, Path.cwd().resolve()}
    before = {folder: files_under(folder) for folder in watched}
    yield
    for folder, files in before.items():
        changed = sorted(
            str(path.relative_to(folder))
            for path, state in files_under(folder).items()
            if files.get(path) != state
        )
        assert not changed, f"the tests wrote in {folder}: {', '.join(changed)}"


@pytest.fixture(scope="module", autouse=True)
def collect_garbage_after_each_module() -> Iterator[None]:
    """Finalise what a module's tests left behind before the next module's workflows run.

    The collector runs finalisers on whichever thread it happens to run on. On a workflow's
    activation thread a Redis client's finaliser, which imports modules, did so inside the
    sandbox: "Module redis... was imported after initial workflow load" warnings, now and then.
    """
    yield
    gc.collect()


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nothing listens on: a connection is refused at once. Held, so nothing takes it."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])


async def start_time_skipping_server() -> WorkflowEnvironment:
    """The time-skipping test server: timers and retry backoff pass at once."""
    return await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, shared by the session's tests."""
    async with await start_time_skipping_server() as env:
        yield env


@pytest.fixture
async def own_time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server of the test's own, for tests that cancel a running activity.

    A workflow cancelled or withdrawn while one of its activities runs (and does not heartbeat)
    leaves the test server's clock locked: time stops skipping for every later test on that
    server, and their retry backoffs (seconds to a minute each) then pass in real time.
    """
    async with await start_time_skipping_server() as env:
        yield env


@pytest.fixture(params=[False, True], ids=["activities", "local-activities"])
def local_activities(request: pytest.FixtureRequest) -> bool:
    """Each saga path twice: steps as activities (the default), and as local activities."""
    local: bool = request.param
    return local


@pytest.fixture(scope="session")
async def dev_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    """The Temporal CLI dev server on a SQLite file, tuned as the demo runs it."""
    async with dev_server_in(tmp_path_factory.mktemp("temporal")) as server:
        yield server


@pytest.fixture(scope="session")
async def client(dev_server: DevServer) -> Client:
    """A client of the dev server that speaks the saga's pydantic models."""
    return await connect(dev_server.address, "default")


@pytest.fixture(scope="session")
async def services_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The four stand-in services, in a process of their own, on temporary databases."""
    data = tmp_path_factory.mktemp("services")
    with (data / "services.log").open("ab") as log:
        async with services_process(free_port(), data, log) as url:
            yield url


@pytest.fixture(scope="session")
def event_bus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's event log; worker processes the tests start publish to it too."""
    url = f"sqlite:///{tmp_path_factory.mktemp('events') / 'events.db'}"
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("EVENT_BUS", url)
        yield url


@pytest.fixture(scope="session")
async def event_bus(event_bus_url: str) -> AsyncIterator[EventBus]:
    """The session's event bus, for workers and for reading what they published."""
    bus = open_event_bus(event_bus_url)
    yield bus
    await bus.close()


@pytest.fixture(scope="session")
async def saga_task_queue(
    client: Client, services_url: str, event_bus: EventBus
) -> AsyncIterator[str]:
    """A worker with the real activities, polling its own task queue."""
    task_queue = "e2e"
    urls = ServiceUrls.from_base(services_url)
    async with (
        create_http_client() as http,
        current_worker(client, task_queue, http, urls, event_bus),
    ):
        yield task_queue


@pytest.fixture(scope="module")
async def api(
    dev_server: DevServer, saga_task_queue: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    """The Order API (`order-saga api`, a process of its own) of one test module."""
    async with running_api(
        dev_server.address, saga_task_queue, tmp_path_factory.mktemp("api")
    ) as api:
        yield api


@pytest.fixture
async def services(services_url: str) -> AsyncIterator[Services]:
    """The services' state and fault switches; faults are reset after each test."""
    async with httpx.AsyncClient(base_url=services_url) as http:
        services = Services(http)
        yield services
        await services.reset_faults()


@pytest.fixture
def starter(dev_server: DevServer, services_url: str, saga_task_queue: str) -> StarterRunner:
    """`starter.py` in a process of its own, pointed at the dev server, services and worker."""
    return StarterRunner(
        os.environ
        | {
            "TEMPORAL_ADDRESS": dev_server.address,
            "SERVICES_URL": services_url,
            "TASK_QUEUE": saga_task_queue,
        }
    )


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    """The services, fresh for one test (their own databases): the base URL of their app."""
    with running_services(tmp_path / "data") as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client as a worker makes it."""
    async with create_http_client() as client:
        yield client


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo what `configure_logging` sets for the rest of the process."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    switches = {name: getattr(logging, name) for name in logs.UNUSED_RECORD_FIELDS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in switches.items():
        setattr(logging, name, value)
    structlog.reset_defaults()
