"""Every stand-in service in one ASGI app, each under its own prefix with its own database."""

from __future__ import annotations

import importlib
from pathlib import Path

from fastapi import FastAPI

from ports import SERVICES
from services.faults import NO_FAULTS, FaultSettings


def create_app(data_dir: Path, faults: FaultSettings = NO_FAULTS) -> FastAPI:
    """One service per port (`ports.SERVICES`), each `services/<name>.py`'s `create_app`.

    Each is mounted under `/<name>` (`/inventory`, `/payment`, ...), plus `GET /healthz`. Each
    keeps its own database in `data_dir` (created if missing), as separate services would.

    Args:
        data_dir: Folder of the database files.
        faults: Fault settings every service starts with; each can be changed at run time with
            `PUT /<service>/admin/faults`.

    Raises:
        LookupError: A port has no stand-in service module with a `create_app`.
    """
    app = FastAPI(title="Order saga stand-in services")
    for name in SERVICES:
        try:
            create_service = importlib.import_module(f"services.{name}").create_app
        except (ModuleNotFoundError, AttributeError) as err:
            raise LookupError(
                f"port {name!r} has no stand-in service: services/{name}.py must define "
                "create_app(data_dir, faults)"
            ) from err
        app.mount(f"/{name}", create_service(data_dir, faults))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Answers once the services are up and their databases are ready."""
        return {"status": "ok"}

    return app
