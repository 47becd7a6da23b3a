"""All four stand-in services in one ASGI app, each under its own prefix with its own database."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.faults import NO_FAULTS, FaultSettings
from services.inventory import create_inventory_app
from services.orders import create_orders_app
from services.payment import create_payment_app
from services.shipping import create_shipping_app


def create_app(data_dir: Path, faults: FaultSettings = NO_FAULTS) -> FastAPI:
    """The Inventory, Payment, Shipping and Order services, mounted in one app.

    They are mounted under `/inventory`, `/payment`, `/shipping` and `/orders`, plus
    `GET /healthz`. Each keeps its own database in `data_dir` (created if missing), as separate
    services would.

    Args:
        data_dir: Folder of the four database files.
        faults: Fault settings every service starts with; each can be changed at run time with
            `PUT /<service>/admin/faults`.
    """
    app = FastAPI(title="Order saga stand-in services")
    app.mount("/inventory", create_inventory_app(data_dir, faults))
    app.mount("/payment", create_payment_app(data_dir, faults))
    app.mount("/shipping", create_shipping_app(data_dir, faults))
    app.mount("/orders", create_orders_app(data_dir, faults))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Answers once the services are up and their databases are ready."""
        return {"status": "ok"}

    return app
