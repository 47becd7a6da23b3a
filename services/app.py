"""Every stand-in service in one ASGI app, each under its own prefix with its own database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from ports import SERVICES
from services import inventory, orders, payment, shipping
from services.faults import NO_FAULTS, FaultSettings

#: The stand-in of each port, by the port's name: how each makes its app.
STAND_INS: dict[str, Callable[[Path, FaultSettings], FastAPI]] = {
    "inventory": inventory.create_app,
    "orders": orders.create_app,
    "payment": payment.create_app,
    "shipping": shipping.create_app,
}


def create_app(data_dir: Path, faults: FaultSettings = NO_FAULTS) -> FastAPI:
    """One service per port (`ports.SERVICES`), each made by its `STAND_INS` entry.

    Each is mounted under `/<name>` (`/inventory`, `/payment`, ...), plus `GET /healthz`. Each
    keeps its own database in `data_dir` (created if missing), as separate services would.

    Args:
        data_dir: Folder of the database files.
        faults: Fault settings every service starts with; each can be changed at run time with
            `PUT /<service>/admin/faults`.

    Raises:
        LookupError: A port has no stand-in service in `STAND_INS`.
    """
    app = FastAPI(title="Order saga stand-in services")
    for name in SERVICES:
        if name not in STAND_INS:
            raise LookupError(
                f"port {name!r} has no stand-in service: add its create_app(data_dir, faults) "
                "to services.app.STAND_INS"
            )
        app.mount(f"/{name}", STAND_INS[name](data_dir, faults))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Answers once the services are up and their databases are ready."""
        return {"status": "ok"}

    return app
