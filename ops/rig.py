"""What bench and chaos run on: a Temporal server and the services, and pools of worker processes.

Built from `ops.stack`'s parts rather than `embedded_stack`, because bench and chaos
need the pieces by hand: the dev server to restart it, worker processes to kill them (and, on
2 cores, workers out of the process that generates the load and measures it).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO

import httpx
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion

from infra.deployment import build_id, running_on
from infra.devserver import DevServer, dev_server_in
from infra.exits import StartFailure
from infra.logs import configure_logging
from infra.settings import DEFAULT_API_PORT, DEFAULT_DEPLOYMENT_NAME, event_log_url
from infra.sockets import free_port
from infra.temporal import connect
from ops.network import Link, Network, Part
from ops.stack import ApiProcess, ServicesProcess, api_process, worker_process
from ordersaga.api.auth import Tokens
from services.faults import NO_FAULTS, FaultSettings
from workflows.order_steps import SERVICES


@dataclass
class Rig:
    """A Temporal server and the services to run load against.

    Attributes:
        client: A client of the server.
        address: The server's host:port, for worker processes.
        services_url: Base URL of the stand-in services.
        log_dir: Where the logs of the processes started go.
        services: The services' process, if this rig started it (chaos kills it).
        server: The dev server, if this rig started it (chaos kills and restarts it).
        network: The namespaces and links the parts run on, if they run on their own
            (`network_rig`); the client and `services` are then reached over links no fault
            touches, and `address` and `services_url` are the workers' ends of theirs.
        starter: The client orders are placed with, over the starter's link if there is a
            network [default: `client`].
    """

    client: Client
    address: str
    services_url: str
    log_dir: Path
    services: ServicesProcess | None = None
    server: DevServer | None = None
    network: Network | None = None
    starter: Client | None = None

    @property
    def services_dir(self) -> Path | None:
        """The services' databases, if this rig started them (for the audit)."""
        return self.services.data_dir if self.services else None

    @property
    def places_with(self) -> Client:
        """The client orders are placed with."""
        return self.starter or self.client

    async def set_faults(self, faults: FaultSettings = NO_FAULTS) -> None:
        """Make every service misbehave as `faults` say (the defaults: not at all)."""
        body = faults.model_dump()
        admin_url = self.services.base_url if self.services else self.services_url
        async with httpx.AsyncClient(base_url=admin_url) as http:
            for service in SERVICES:
                (await http.put(f"/{service}/admin/faults", json=body)).raise_for_status()


def log_into(log_dir: Path) -> None:
    """Send this process's log lines to `log_dir/load.log`, off the terminal.

    For the commands that drive load: while they break the server, the SDK logs each call it
    retries, which would bury their progress and results.
    """
    configure_logging(json=True, stream=(log_dir / "load.log").open("a"))


@asynccontextmanager
async def embedded_rig_in(
    data_dir: Path | None,
    purpose: str,
    *,
    network: bool = False,
    retention: timedelta | None = None,
) -> AsyncIterator[Rig]:
    """An embedded rig in `data_dir`, or in a temporary folder removed afterwards.

    With `network`, each part runs in a network namespace of its own (`network_rig`); with
    `retention`, the server keeps ended sagas that long (`embedded_rig`).
    """
    with contextlib.ExitStack() as temporary:
        folder = data_dir or Path(
            temporary.enter_context(tempfile.TemporaryDirectory(prefix=f"order-saga-{purpose}-"))
        )
        made = network_rig(folder) if network else embedded_rig(folder, retention)
        async with made as rig:
            yield rig


@asynccontextmanager
async def embedded_rig(data_dir: Path, retention: timedelta | None = None) -> AsyncIterator[Rig]:
    """A dev server (tuned, on `data_dir/temporal.db`) and the services, on free ports.

    The services keep their databases in `data_dir/services`; logs go to `data_dir`. The
    server keeps ended sagas for `retention` (its own 24 hours if None), and the services what
    those sagas left, as they learn from the event log in `data_dir` (`DATA_RETENTION`'s if
    None).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        services_log = stack.enter_context((data_dir / "services.log").open("ab"))
        server = await stack.enter_async_context(dev_server_in(data_dir, retention=retention))
        services = ServicesProcess(
            free_port(),
            data_dir / "services",
            services_log,
            event_bus=event_log_url(data_dir),
            retention=retention,
        )
        await services.start()
        stack.push_async_callback(services.stop)
        yield Rig(
            client=await connect(server.address),
            address=server.address,
            services_url=services.base_url,
            log_dir=data_dir,
            services=services,
            server=server,
        )


#: The ports the server and the services listen on in their namespaces (all free there).
TEMPORAL_PORT, SERVICES_PORT = 7233, 8000

#: What a process in a namespace listens on: every link of its namespace.
ALL_INTERFACES = "0.0.0.0"


@asynccontextmanager
async def network_rig(data_dir: Path) -> AsyncIterator[Rig]:
    """Like `embedded_rig`, each part in a network namespace of its own, on links to break.

    The dev server, the services and the workers each run in their namespace; this process
    watches over control links (`ops.network`) and places orders over the starter's link.

    Raises:
        StartFailure: This machine cannot make namespaces (in one line, what is missing).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    with Network.made() as network:
        async with AsyncExitStack() as stack:
            services_log = stack.enter_context((data_dir / "services.log").open("ab"))
            server = await stack.enter_async_context(
                dev_server_in(
                    data_dir,
                    port=TEMPORAL_PORT,
                    host=network.control_address(Part.TEMPORAL),
                    listen=ALL_INTERFACES,
                    launcher=network.launcher(Part.TEMPORAL),
                )
            )
            services = ServicesProcess(
                SERVICES_PORT,
                data_dir / "services",
                services_log,
                host=network.control_address(Part.SERVICES),
                listen=ALL_INTERFACES,
                launcher=network.launcher(Part.SERVICES),
            )
            await services.start()
            stack.push_async_callback(services.stop)
            starter_address = f"{network.address(Link.STARTER_TEMPORAL)}:{TEMPORAL_PORT}"
            yield Rig(
                client=await connect(server.address),
                address=f"{network.address(Link.WORKER_TEMPORAL)}:{TEMPORAL_PORT}",
                services_url=f"http://{network.address(Link.WORKER_SERVICES)}:{SERVICES_PORT}",
                log_dir=data_dir,
                services=services,
                server=server,
                network=network,
                starter=await connect(starter_address, runtime=network.runtime(Part.STARTER)),
            )


@asynccontextmanager
async def network_api(rig: Rig, task_queue: str, tokens: Tokens) -> AsyncIterator[ApiProcess]:
    """The Order API in its namespace of `rig`'s network, reaching Temporal over its own link.

    It is reached over a control link, at `ApiProcess.url`; its log goes to `api.log`.
    """
    network = rig.network
    assert network is not None, "the API runs in a namespace of the rig's network"
    async with api_process(
        f"{network.address(Link.API_TEMPORAL)}:{TEMPORAL_PORT}",
        task_queue,
        tokens,
        rig.log_dir / "api.log",
        DEFAULT_API_PORT,
        host=network.control_address(Part.API),
        listen=ALL_INTERFACES,
        launcher=network.launcher(Part.API),
    ) as api:
        yield api


async def remote_rig(address: str, services_url: str, log_dir: Path) -> Rig:
    """A rig of a server and services already running elsewhere."""
    log_dir.mkdir(parents=True, exist_ok=True)
    return Rig(await connect(address), address, services_url, log_dir)


#: How long a worker that exits at once is started again, on a rig with a network: longer than
#: a link stays cut.
RESTART_WITHIN_S = 180.0

#: Seconds after a deploy before the version left behind may be found drained.
SETTLE_S = 5.0


@dataclass
class _Worker:
    slot: AsyncExitStack
    process: asyncio.subprocess.Process
    label: str | None
    build: str
    command: Sequence[str] | None


@dataclass
class WorkerPool:
    """Worker processes polling one task queue; any of them can be SIGKILLed and replaced.

    The workers are versions of the default Worker Deployment; `deploy` starts a new version
    beside the running one, and `stop_drained` stops the workers of versions left behind once
    no saga runs on them any more.

    Attributes:
        rig: What the workers connect to.
        task_queue: The queue they poll.
        command: The worker program (`python worker.py` if None).
        kills: How many workers were killed so far.
        label: The `BUILD_LABEL` of the current version's workers.
        env: More environment variables for every worker.
    """

    rig: Rig
    task_queue: str
    command: Sequence[str] | None = None
    kills: int = 0
    label: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    _workers: list[_Worker] = field(default_factory=list, init=False)
    _left_behind: dict[str | None, float] = field(default_factory=dict, init=False)
    _log: IO[bytes] | None = field(default=None, init=False)

    @asynccontextmanager
    async def running(self, count: int) -> AsyncIterator[WorkerPool]:
        """Start `count` workers and return once all poll; stop them (SIGTERM) at the end."""
        with (self.rig.log_dir / "workers.log").open("ab") as self._log:
            try:
                for _ in range(count):
                    await self._start(self.label, current=True)
                yield self
            finally:
                for worker in self._workers:
                    await worker.slot.aclose()

    @property
    def exited(self) -> list[str]:
        """The workers that have ended by themselves (a worker killed is no longer the pool's)."""
        return [
            f"worker {worker.process.pid}"
            for worker in self._workers
            if worker.process.returncode is not None
        ]

    @property
    def pids(self) -> list[int]:
        """The process ids of the workers running now."""
        return [worker.process.pid for worker in self._workers]

    async def kill_and_replace(self, rng: random.Random) -> None:
        """SIGKILL one worker chosen at random (it finishes nothing), then start a new one.

        The new one is of the killed one's version, so the sagas pinned to it go on.
        """
        worker = self._workers.pop(rng.randrange(len(self._workers)))
        worker.process.kill()
        await worker.slot.aclose()
        self.kills += 1
        await self._start(worker.label, current=False, build=worker.build, command=worker.command)

    async def deploy(self, label: str, count: int) -> None:
        """Start `count` workers as the version `label` and make it current.

        The workers of the versions before it keep running: the sagas pinned to those end there.
        """
        self._left_behind[self.label] = time.monotonic()
        self.label = label
        for _ in range(count):
            await self._start(label, current=True)

    async def add_candidate(self, label: str, build: str, command: Sequence[str]) -> None:
        """Start a worker of another checkout's code (`command`), version `build`, not current.

        It gets new sagas only once a rollout ramps it; `leave_behind` then lets it be stopped.
        """
        await self._start(label, current=False, build=build, command=command)

    def leave_behind(self, label: str) -> None:
        """The version `label` gets no new sagas any more: stop its workers once it drains."""
        self._left_behind[label] = time.monotonic()

    async def stop_drained(self, *, no_more_sagas: bool = False) -> list[str]:
        """Stop the workers of every version that is not current and runs no saga any more.

        A version is looked at only `SETTLE_S` after it was left behind, unless no saga will be
        started any more: a saga whose first workflow task its worker was running then is
        pinned to it a moment later.

        Returns:
            The build ids of the versions stopped.
        """
        stopped = []
        settled = time.monotonic() - (0 if no_more_sagas else SETTLE_S)
        builds = {worker.label: worker.build for worker in self._workers}
        for label in builds.keys() - {self.label}:
            version = WorkerDeploymentVersion(DEFAULT_DEPLOYMENT_NAME, builds[label])
            left = self._left_behind.get(label)
            if left is None or left > settled or await self._running_on(version):
                continue
            for worker in [worker for worker in self._workers if worker.label == label]:
                self._workers.remove(worker)
                await worker.slot.aclose()
            stopped.append(version.build_id)
        return stopped

    async def _running_on(self, version: WorkerDeploymentVersion) -> int:
        query = f"{running_on(version)} AND TaskQueue = '{self.task_queue}'"
        return (await self.rig.client.count_workflows(query)).count

    async def _start(
        self,
        label: str | None,
        *,
        current: bool,
        build: str | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        """Start a worker; start it again while it exits at once, as a supervisor would.

        A worker that cannot reach Temporal when it starts (its link cut, the server down a
        moment) exits saying so; with a network, it is started again until its link is back.
        """
        assert self._log is not None
        command = command or self.command
        restart_until = time.monotonic() + (RESTART_WITHIN_S if self.rig.network else 0)
        while True:
            slot = AsyncExitStack()
            try:
                process = await slot.enter_async_context(
                    worker_process(
                        self.rig.address,
                        self.task_queue,
                        self.rig.services_url,
                        self._log,
                        data_dir=self.rig.log_dir,
                        env={**self.env, **({"BUILD_LABEL": label} if label else {})},
                        command=command,
                        current=current,
                        launcher=self.rig.network.launcher(Part.WORKER) if self.rig.network else (),
                        control_address=self.rig.server.address if self.rig.server else None,
                    )
                )
                break
            except StartFailure:
                if time.monotonic() > restart_until:
                    raise
                await asyncio.sleep(1.0)  # a supervisor's pause before it starts it again
        self._workers.append(_Worker(slot, process, label, build or build_id(label), command))
