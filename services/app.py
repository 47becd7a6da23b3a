"""Every stand-in service in one ASGI app, each under its own prefix with its own database."""

from __future__ import annotations

import importlib
from pathlib import Path

from fastapi import FastAPI

from services.faults import NO_FAULTS, FaultSettings
from workflows.order_steps import SERVICES


def create_app(data_dir: Path, faults: FaultSettings = NO_FAULTS) -> FastAPI:
    """One stand-in per service the saga calls (`workflows.order_steps.SERVICES`).

    The stand-in of the port named `<name>` is `services/<name>.py`'s `create_app(data_dir,
    faults)`, mounted under `/<name>` (`/inventory`, `/payment`, ...), plus `GET /healthz`: a
    new port's stand-in is its module, listed nowhere else. Each keeps its own database in
    `data_dir` (created if missing), as separate services would.

    Args:
        data_dir: Folder of the database files.
        faults: Fault settings every service starts with; each can be changed at run time with
            `PUT /<service>/admin/faults`.

    Raises:
        LookupError: A port has no stand-in service.
    """
    app = FastAPI(title="Order saga stand-in services")
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
        app.mount(f"/{name}", stand_in.create_app(data_dir, faults))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Answers once the services are up and their databases are ready."""
        return {"status": "ok"}

    return app
