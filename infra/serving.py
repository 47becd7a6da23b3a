"""Serving an ASGI app (the codec server, the Order API) inside a process's own event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from infra.exits import StartFailure
from infra.sockets import listening_socket


@asynccontextmanager
async def serving(app: FastAPI, host: str, port: int, what: str) -> AsyncIterator[str]:
    """Serve `app` in this event loop until the context ends; yields its base URL.

    Args:
        app: The app.
        host: The interface to listen on.
        port: The port (0: any free one).
        what: The server and its port's setting, as a start failure names them
            (`codec server, CODEC_SERVER_PORT`).

    Raises:
        PortInUseError: `port` is taken.
    """
    sock = listening_socket(host, port, what)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise StartFailure(f"the {what.split(',')[0]} on port {port} stopped at start")
            await asyncio.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
