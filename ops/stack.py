"""The whole embedded stack in one place: dev server, stand-in services and a worker."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO

import aiohttp
import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.worker import Worker

import worker
from activities.http import create_http_client
from infra.deployment import build_id, make_current, worker_version
from infra.devserver import DevServer
from infra.eventbus import EventBus, open_event_bus
from infra.exits import StartFailure, see_log, until_ready
from infra.settings import (
    DEFAULT_DEPLOYMENT_NAME,
    DEFAULT_NAMESPACE,
    ENV_FILE_VARIABLE,
    ServiceUrls,
    Settings,
    event_log_url,
)
from infra.sockets import ensure_free, free_port
from infra.temporal import connect
from ordersaga.api.auth import Tokens
from worker import deployed_worker


@dataclass
class ServicesProcess:
    """The stand-in services (`python -m services`) in a process of their own, restartable.

    Attributes:
        port: The port they serve on; the same after a restart, so their URL holds.
        data_dir: Their databases' folder, which outlives the process.
        log: Where their output goes.
        host: The interface they listen on.
        code: The checkout whose `services` package runs [default: this one's].
        listen: The interface they bind, if not `host`: `0.0.0.0` for services reached over
            several links.
        launcher: A command they run under, such as `ip netns exec NAME`.
        event_bus: The saga events' bus they learn ended orders from [default: the log in
            `data_dir`, as `python -m services` has it].
        retention: How long they keep an ended order's records [default: `DATA_RETENTION`'s].
    """

    port: int
    data_dir: Path
    log: IO[bytes] | int = subprocess.DEVNULL
    host: str = "127.0.0.1"
    code: Path | None = None
    listen: str | None = None
    launcher: tuple[str, ...] = ()
    event_bus: str | None = None
    retention: timedelta | None = None
    _process: asyncio.subprocess.Process | None = field(default=None, init=False, repr=False)

    @property
    def base_url(self) -> str:
        """Where they answer."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Their process id, once started."""
        return self._process.pid if self._process else None

    @property
    def exited(self) -> bool:
        """Whether their process, once started, has ended (and was not stopped or killed)."""
        return self._process is not None and self._process.returncode is not None

    async def start(self, ready_within: float = 60.0) -> None:
        """Start them and return once they answer `/healthz`.

        Raises:
            PortInUseError: The port is taken.
            StartFailure: They exited, or did not answer within `ready_within` seconds.
        """
        if not self.launcher:  # a launched process's ports may be another namespace's
            ensure_free(self.host, self.port, "stand-in services")
        self._process = await asyncio.create_subprocess_exec(
            *self.launcher, sys.executable, "-m", "services", "--host", self.listen or self.host,
            "--port", str(self.port),
            "--data-dir", str(self.data_dir.resolve()), *self._retention_args(),
            stdout=self.log, stderr=self.log, cwd=self.code,
        )  # fmt: skip
        try:
            await until_ready(
                self._process,
                self._answers,
                f"the stand-in services on port {self.port}",
                self.log,
                ready_within,
            )
        except StartFailure:
            await self.stop()
            raise

    async def kill(self) -> None:
        """SIGKILL them, as a power cut would: no request finishes, no transaction commits."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()

    async def stop(self) -> None:
        """End them (SIGTERM: in-flight requests finish)."""
        if self._process is not None:
            await stop_process(self._process)

    def _retention_args(self) -> list[str]:
        bus = ["--event-bus", self.event_bus] if self.event_bus else []
        kept = ["--data-retention", str(self.retention.total_seconds())] if self.retention else []
        return bus + kept

    async def _answers(self) -> bool:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{self.base_url}/healthz")).is_success
        except httpx.TransportError:
            return False


@asynccontextmanager
async def services_process(
    port: int,
    data_dir: Path,
    log: IO[bytes] | int,
    host: str = "127.0.0.1",
    *,
    event_bus: str | None = None,
    retention: timedelta | None = None,
) -> AsyncIterator[str]:
    """Run the stand-in services for the length of the context; yields their base URL.

    `event_bus` and `retention` are `ServicesProcess`'s.
    """
    services = ServicesProcess(port, data_dir, log, host, event_bus=event_bus, retention=retention)
    await services.start()
    try:
        yield services.base_url
    finally:
        await services.stop()


@dataclass(frozen=True)
class ApiProcess:
    """The Order API running in a process of its own.

    Attributes:
        url: Where it answers.
        pid: Its process id.
    """

    url: str
    pid: int


@asynccontextmanager
async def api_process(
    address: str,
    task_queue: str,
    tokens: Tokens,
    log: IO[bytes] | int | Path,
    port: int | None = None,
    settings: Mapping[str, str] | None = None,
    *,
    host: str = "127.0.0.1",
    listen: str | None = None,
    launcher: Sequence[str] = (),
) -> AsyncIterator[ApiProcess]:
    """Run `order-saga api` for the length of the context, on the sagas of `task_queue`.

    Its settings come from this process's environment (the codec's keys, say), `settings`
    (environment variables) and these arguments, never from a settings file. It is reached at
    `host`, and binds `listen` if given (`0.0.0.0` in a network namespace, say); `launcher`
    is a command it runs under, such as `ip netns exec NAME`.

    Raises:
        StartFailure: It exited, or did not answer within a minute.
    """
    port = port or free_port()
    env = (
        os.environ
        | dict(settings or {})
        | {
            "TEMPORAL_ADDRESS": address,
            "TASK_QUEUE": task_queue,
            "API_HOST": listen or host,
            "API_PORT": str(port),
            "API_SHOP_TOKEN": tokens.shop,
            "API_OPERATOR_TOKEN": tokens.operator,
            ENV_FILE_VARIABLE: "",
        }
    )
    url = f"http://{host}:{port}"

    async def answers() -> bool:
        try:
            async with httpx.AsyncClient() as http:
                headers = {"Authorization": f"Bearer {tokens.operator}"}
                return (await http.get(f"{url}/openapi.json", headers=headers)).is_success
        except httpx.TransportError:
            return False

    async with AsyncExitStack() as running:
        if isinstance(log, Path):
            log = running.enter_context(log.open("ab"))
        process = await asyncio.create_subprocess_exec(
            *launcher, sys.executable, "-m", "ops.cli", "api", env=env, stdout=log, stderr=log
        )  # fmt: skip
        running.push_async_callback(stop_process, process)
        await until_ready(process, answers, f"the Order API on port {port}", log, 60.0)
        yield ApiProcess(url, process.pid)


@dataclass(frozen=True)
class Stack:
    """A running embedded stack.

    Attributes:
        client: A client of the dev server.
        services_url: Base URL of the stand-in services.
        task_queue: The queue the worker polls.
        event_bus_url: Where the worker publishes saga events.
    """

    client: Client
    services_url: str
    task_queue: str
    event_bus_url: str

    @property
    def urls(self) -> ServiceUrls:
        """The URL of each service."""
        return ServiceUrls.from_base(self.services_url)


@asynccontextmanager
async def embedded_stack(
    data_dir: Path,
    *,
    temporal_port: int,
    ui_port: int | None,
    services_port: int,
    task_queue: str,
    settings: Settings | None = None,
    ui_codec_endpoint: str | None = None,
) -> AsyncIterator[Stack]:
    """Start the dev server (on a SQLite file in `data_dir`), the services and a worker.

    Logs of the server and the services go to files in `data_dir`. The client and the worker
    encode payloads as `settings` say (by default, as the environment says); the Web UI shows
    them decoded through `ui_codec_endpoint`, if given. The server and the services keep what
    ended sagas left for the settings' `data_retention`, as the consumers do.
    """
    settings = settings or Settings()
    data_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        server_log = stack.enter_context((data_dir / "temporal.log").open("ab"))
        services_log = stack.enter_context((data_dir / "services.log").open("ab"))
        server = DevServer(
            port=temporal_port,
            ui_port=ui_port,
            db_file=data_dir / "temporal.db",
            log=server_log,
            ui_codec_endpoint=ui_codec_endpoint,
            retention=settings.data_retention,
        )
        ensure_free(server.host, services_port, "stand-in services")
        await server.start()
        stack.push_async_callback(server.stop)
        event_bus_url = event_log_url(data_dir)
        services_url = await stack.enter_async_context(
            services_process(
                services_port,
                data_dir / "services",
                services_log,
                event_bus=event_bus_url,
                retention=settings.data_retention,
            )
        )
        client = await connect(server.address, DEFAULT_NAMESPACE, settings=settings)
        http = await stack.enter_async_context(create_http_client())
        urls = ServiceUrls.from_base(services_url)
        bus = open_event_bus(event_bus_url)
        stack.push_async_callback(bus.close)
        version = worker_version(settings)
        await stack.enter_async_context(
            current_worker(client, task_queue, http, urls, bus, version)
        )
        yield Stack(client, services_url, task_queue, event_bus_url)


@asynccontextmanager
async def current_worker(
    client: Client,
    task_queue: str,
    http: aiohttp.ClientSession,
    urls: ServiceUrls,
    bus: EventBus,
    version: WorkerDeploymentVersion | None = None,
) -> AsyncIterator[Worker]:
    """A worker of this process (`worker.deployed_worker`), polling, its version made current.

    New sagas on `task_queue` reach it from the moment the context is entered. It is `version`
    of its deployment; by default this code's build of the default deployment.
    """
    version = version or WorkerDeploymentVersion(DEFAULT_DEPLOYMENT_NAME, build_id())
    async with deployed_worker(client, task_queue, http, urls, bus, version) as running:
        await make_current(client, version)
        yield running


#: `worker.py`, run as a script by `worker_process`.
WORKER_SCRIPT = Path(worker.__file__).resolve()


@asynccontextmanager
async def worker_process(
    address: str,
    task_queue: str,
    services_url: str,
    log: IO[bytes] | int,
    *,
    data_dir: Path,
    namespace: str = DEFAULT_NAMESPACE,
    env: Mapping[str, str] | None = None,
    ready_within: float = 30.0,
    stop_within: float = 15.0,
    command: Sequence[str] | None = None,
    current: bool = True,
    launcher: Sequence[str] = (),
    control_address: str | None = None,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run `python worker.py` in a process of its own; yields the process once it polls.

    The worker gets `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TASK_QUEUE`, `SERVICES_URL` and
    `DATA_DIR` in its environment (on top of this process's environment and `env`), and no
    settings file: what it writes (the saga events of the default event bus, for one) stays in
    `data_dir`, never in the data folder of the directory it runs in. The context is entered
    once the Temporal server lists the process (by its identity, `<pid>@<host>`) among the
    pollers of both the workflow and the activity task queue, so work placed on `task_queue`
    from then on reaches it.

    To crash the worker, as a power cut or the OOM killer would, call `process.kill()`
    (SIGKILL): it finishes nothing, and Temporal hands its work to another worker once the
    activities' start-to-close timeouts expire. On exit, a process still alive gets SIGTERM,
    which lets it finish in-flight work (up to the worker's graceful shutdown timeout), and
    SIGKILL if it has not ended within `stop_within` seconds.

    Args:
        address: The Temporal frontend, host:port.
        task_queue: The task queue the worker polls.
        services_url: Base URL of the stand-in services.
        log: Where the worker's output goes (a file opened for binary writing, or DEVNULL).
        data_dir: The worker's data folder.
        namespace: The Temporal namespace.
        env: More environment variables for the worker (`INVENTORY_URL`, ...).
        ready_within: Seconds to wait for the worker to poll.
        stop_within: Seconds to wait for a terminated worker to end before killing it.
        command: Another worker program to run the same way (such as bench's baseline
            worker, `python -m ops.baseline`); `python worker.py` by default.
        current: Make the worker's deployment version current once it polls (if it has one),
            so that new sagas go to it.
        launcher: A command the worker runs under, such as `ip netns exec NAME` (it execs the
            worker: the process is the worker's).
        control_address: Where this process reaches the server to see the worker poll, if
            not at `address` (the worker's, which may be another namespace's).

    Raises:
        StartFailure: The worker exited before it polled, or did not poll within
            `ready_within` seconds; the message names its log.
    """
    worker_env = {
        **os.environ,
        **(env or {}),
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_NAMESPACE": namespace,
        "TASK_QUEUE": task_queue,
        "SERVICES_URL": services_url,
        "DATA_DIR": str(data_dir),
        ENV_FILE_VARIABLE: "",
    }
    argv = (*launcher, *(command or (sys.executable, str(WORKER_SCRIPT))))
    process = await asyncio.create_subprocess_exec(*argv, stdout=log, stderr=log, env=worker_env)
    try:
        client = await connect(control_address or address, namespace)
        try:
            async with asyncio.timeout(ready_within):
                version = await wait_for_pollers(
                    client, task_queue, worker_identity(process.pid), process
                )
                if current and version:
                    await make_current(client, version)
        except WorkerExited as exited:
            raise StartFailure(f"{exited} before it polled {task_queue}; {see_log(log)}") from None
        except TimeoutError:
            raise StartFailure(
                f"a worker (pid {process.pid}) did not poll {task_queue} within "
                f"{ready_within:.0f} s; {see_log(log)}"
            ) from None
        yield process
    finally:
        await stop_process(process, stop_within)


class WorkerExited(Exception):
    """A worker process ended while it was awaited."""


def worker_identity(pid: int) -> str:
    """The identity a worker started in process `pid` on this host reports to Temporal.

    It is the SDK's default client identity, which `worker.py` keeps.
    """
    return f"{pid}@{socket.gethostname()}"


async def wait_for_pollers(
    client: Client,
    task_queue: str,
    identity: str,
    process: asyncio.subprocess.Process | None = None,
    interval_s: float = 0.05,
) -> WorkerDeploymentVersion | None:
    """Wait until a worker with `identity` polls both kinds of task of `task_queue`.

    Bound it with `asyncio.timeout`.

    Returns:
        The deployment version the worker polls as; None if it is unversioned.

    Raises:
        WorkerExited: `process` was given and ended first.
    """
    kinds = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
    while True:
        if process is not None and process.returncode is not None:
            raise WorkerExited(f"a worker exited with code {process.returncode}")
        polling = []
        for kind in kinds:
            described = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=task_queue),
                    task_queue_type=kind,
                )
            )
            polling += [poller for poller in described.pollers if poller.identity == identity]
        if len(polling) == len(kinds):
            options = polling[0].deployment_options
            if not options.build_id:
                return None
            return WorkerDeploymentVersion(options.deployment_name, options.build_id)
        await asyncio.sleep(interval_s)


async def stop_process(process: asyncio.subprocess.Process, within_s: float = 15.0) -> None:
    """End `process`: SIGTERM, then SIGKILL if it is still alive after `within_s` seconds."""
    if process.returncode is None:
        with suppress(ProcessLookupError):  # ended, not yet reaped
            process.terminate()
        try:
            async with asyncio.timeout(within_s):
                await process.wait()
            return
        except TimeoutError:
            process.kill()
    await process.wait()
