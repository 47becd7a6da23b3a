"""What bench and chaos run on: a Temporal server and the services, and pools of worker processes.

Built from `ordersaga.ops.stack`'s parts rather than `embedded_stack`, because bench and chaos
need the pieces by hand: the dev server to restart it, worker processes to kill them (and, on
2 cores, workers out of the process that generates the load and measures it).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from temporalio.client import Client

from ordersaga.devserver import DevServer
from ordersaga.logs import configure_logging
from ordersaga.ops.stack import ServicesProcess, worker_process
from ordersaga.sockets import free_port
from ordersaga.temporal import connect
from ports import SERVICES
from services.faults import NO_FAULTS, FaultSettings


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
    """

    client: Client
    address: str
    services_url: str
    log_dir: Path
    services: ServicesProcess | None = None
    server: DevServer | None = None

    @property
    def services_dir(self) -> Path | None:
        """The services' databases, if this rig started them (for the audit)."""
        return self.services.data_dir if self.services else None

    async def set_faults(self, faults: FaultSettings = NO_FAULTS) -> None:
        """Make every service misbehave as `faults` say (the defaults: not at all)."""
        body = faults.model_dump()
        async with httpx.AsyncClient(base_url=self.services_url) as http:
            for service in SERVICES:
                (await http.put(f"/{service}/admin/faults", json=body)).raise_for_status()


def log_into(log_dir: Path) -> None:
    """Send this process's log lines to `log_dir/load.log`, off the terminal.

    For the commands that drive load: while they break the server, the SDK logs each call it
    retries, which would bury their progress and results.
    """
    configure_logging(json=True, stream=(log_dir / "load.log").open("a"))


@asynccontextmanager
async def embedded_rig_in(data_dir: Path | None, purpose: str) -> AsyncIterator[Rig]:
    """An embedded rig in `data_dir`, or in a temporary folder removed afterwards."""
    if data_dir:
        async with embedded_rig(data_dir) as rig:
            yield rig
        return
    with tempfile.TemporaryDirectory(prefix=f"order-saga-{purpose}-") as tmp:
        async with embedded_rig(Path(tmp)) as rig:
            yield rig


@asynccontextmanager
async def embedded_rig(data_dir: Path) -> AsyncIterator[Rig]:
    """A dev server (tuned, on `data_dir/temporal.db`) and the services, on free ports.

    The services keep their databases in `data_dir/services`; logs go to `data_dir`.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        server_log = stack.enter_context((data_dir / "temporal.log").open("ab"))
        services_log = stack.enter_context((data_dir / "services.log").open("ab"))
        server = DevServer(port=free_port(), db_file=data_dir / "temporal.db", log=server_log)
        await server.start()
        stack.push_async_callback(server.stop)
        services = ServicesProcess(free_port(), data_dir / "services", services_log)
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


async def remote_rig(address: str, services_url: str, log_dir: Path) -> Rig:
    """A rig of a server and services already running elsewhere."""
    log_dir.mkdir(parents=True, exist_ok=True)
    return Rig(await connect(address), address, services_url, log_dir)


@dataclass
class WorkerPool:
    """Worker processes polling one task queue; any of them can be SIGKILLed and replaced.

    Attributes:
        rig: What the workers connect to.
        task_queue: The queue they poll.
        command: The worker program (`python worker.py` if None).
        kills: How many workers were killed so far.
    """

    rig: Rig
    task_queue: str
    command: Sequence[str] | None = None
    kills: int = 0
    _slots: list[AsyncExitStack] = field(default_factory=list, init=False)
    _processes: list[asyncio.subprocess.Process] = field(default_factory=list, init=False)
    _log: IO[bytes] | None = field(default=None, init=False)

    @asynccontextmanager
    async def running(self, count: int) -> AsyncIterator[WorkerPool]:
        """Start `count` workers and return once all poll; stop them (SIGTERM) at the end."""
        with (self.rig.log_dir / "workers.log").open("ab") as self._log:
            try:
                for _ in range(count):
                    await self._start()
                yield self
            finally:
                for slot in self._slots:
                    await slot.aclose()

    @property
    def pids(self) -> list[int]:
        """The process ids of the workers running now."""
        return [process.pid for process in self._processes]

    async def kill_and_replace(self, rng: random.Random) -> None:
        """SIGKILL one worker chosen at random (it finishes nothing), then start a new one."""
        index = rng.randrange(len(self._slots))
        process, slot = self._processes.pop(index), self._slots.pop(index)
        process.kill()
        await slot.aclose()
        self.kills += 1
        await self._start()

    async def _start(self) -> None:
        assert self._log is not None
        slot = AsyncExitStack()
        process = await slot.enter_async_context(
            worker_process(
                self.rig.address,
                self.task_queue,
                self.rig.services_url,
                self._log,
                command=self.command,
            )
        )
        self._slots.append(slot)
        self._processes.append(process)
