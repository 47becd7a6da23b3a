"""The whole embedded stack in one place: dev server, stand-in services and a worker."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from temporalio.client import Client

from activities import create_http_client
from ordersaga.devserver import DevServer, ensure_free
from ordersaga.settings import DEFAULT_NAMESPACE, ServiceUrls
from ordersaga.temporal import connect
from worker import create_worker


@asynccontextmanager
async def services_process(
    port: int, data_dir: Path, log: IO[bytes] | int, host: str = "127.0.0.1"
) -> AsyncIterator[str]:
    """Run the four stand-in services in a process of their own; yields their base URL."""
    ensure_free(host, port, "stand-in services")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services", "--host", host, "--port", str(port),
        "--data-dir", str(data_dir), stdout=log, stderr=log,
    )  # fmt: skip
    base_url = f"http://{host}:{port}"
    try:
        async with asyncio.timeout(30):
            await _wait_healthy(base_url, process)
        yield base_url
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def _wait_healthy(base_url: str, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient() as http:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"the services exited with {process.returncode}; see their log")
            try:
                if (await http.get(f"{base_url}/healthz")).is_success:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


@dataclass(frozen=True)
class Stack:
    """A running embedded stack.

    Attributes:
        client: A client of the dev server.
        services_url: Base URL of the stand-in services.
        task_queue: The queue the worker polls.
    """

    client: Client
    services_url: str
    task_queue: str

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
) -> AsyncIterator[Stack]:
    """Start the dev server (on a SQLite file in `data_dir`), the services and a worker.

    Logs of the server and the services go to files in `data_dir`.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        server_log = stack.enter_context((data_dir / "temporal.log").open("ab"))
        services_log = stack.enter_context((data_dir / "services.log").open("ab"))
        server = DevServer(
            port=temporal_port, ui_port=ui_port, db_file=data_dir / "temporal.db", log=server_log
        )
        ensure_free(server.host, services_port, "stand-in services")
        await server.start()
        stack.push_async_callback(server.stop)
        services_url = await stack.enter_async_context(
            services_process(services_port, data_dir / "services", services_log)
        )
        client = await connect(server.address, DEFAULT_NAMESPACE)
        http = await stack.enter_async_context(create_http_client())
        urls = ServiceUrls.from_base(services_url)
        await stack.enter_async_context(create_worker(client, task_queue, http, urls))
        yield Stack(client=client, services_url=services_url, task_queue=task_queue)
