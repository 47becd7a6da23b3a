"""Every stand-in service in one ASGI app, each under its own prefix with its own database."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from infra.settings import DEFAULT_DATA_RETENTION
from services.faults import NO_FAULTS, FaultSettings
from services.retention import OrderRetention, following_ended_orders
from workflows.order_steps import SERVICES


def create_app(
    data_dir: Path,
    faults: FaultSettings = NO_FAULTS,
    *,
    event_bus: str | None = None,
    retention: timedelta = DEFAULT_DATA_RETENTION,
) -> FastAPI:
    """One stand-in per service the saga calls (`workflows.order_steps.SERVICES`).

    The stand-in of the port named `<name>` is `services/<name>.py`'s `create_app(data_dir,
    faults)`, mounted under `/<name>` (`/inventory`, `/payment`, ...), plus `GET /healthz`: a
    new port's stand-in is its module, listed nowhere else. Each keeps its own database in
    `data_dir` (created if missing), as separate services would.

    Args:
        data_dir: Folder of the database files.
        faults: Fault settings every service starts with; each can be changed at run time with
            `PUT /<service>/admin/faults`.
        event_bus: The saga events' bus, to learn which orders ended; without one, every
            record is kept.
        retention: How long after its saga ended an order's records are kept.

    Raises:
        LookupError: A port has no stand-in service.
    """
    retentions: list[OrderRetention] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if event_bus is None:
            yield
            return
        async with following_ended_orders(event_bus, retention, retentions):
            yield

    app = FastAPI(title="Order saga stand-in services", lifespan=lifespan)
    for name in SERVICES:
        try:
            stand_in = importlib.import_module(f"services.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"services.{name}":
                raise  # the stand-in is there; something it imports is not
            raise LookupError(
                f"port {name!r} has no stand-in service: add services/{name}.py with "
                "create_app(data_dir, faults)"
            ) from None
        service = stand_in.create_app(data_dir, faults)
        retentions.append(service.state.retention)
        app.mount(f"/{name}", service)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Answers once the services are up and their databases are ready."""
        return {"status": "ok"}

    return app
