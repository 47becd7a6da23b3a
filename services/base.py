"""What every service is built from: its own database, its effects machinery, its admin routes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Header

from infra.sqlite import Database
from services.effects import Effects
from services.errors import install_error_handlers
from services.faults import FaultInjector, FaultSettings, faults_router
from services.retention import Forget, OrderRetention

#: The `Idempotency-Key` header that every mutating call must carry.
IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200)]


@dataclass(frozen=True)
class Service:
    """A service's parts, for its module to add routes to."""

    app: FastAPI
    db: Database
    effects: Effects


def new_service(
    name: str,
    data_dir: Path,
    schema: str,
    faults: FaultSettings,
    description: str,
    forget: Forget,
) -> Service:
    """A FastAPI app with its database `<data_dir>/<name>.db`, error handlers and fault admin.

    The app's `state.retention` forgets what ended orders left (`services.retention`).

    Args:
        name: The service's name: its database file's and its logs'.
        data_dir: Folder of the database file.
        schema: The service's own tables (idempotent DDL).
        faults: Fault settings at start.
        description: One line for the OpenAPI docs.
        forget: Deletes the service's own records of ended orders.
    """
    db = Database(data_dir / f"{name}.db")
    db.apply_schema(schema)
    injector = FaultInjector(faults)
    app = FastAPI(title=f"{name.capitalize()} service", description=description)
    install_error_handlers(app)
    app.include_router(faults_router(injector))
    effects = Effects(name, db, injector)  # its tables first: forgetting deletes from them
    app.state.retention = OrderRetention(db, forget)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Answers while the service can take calls: what a deploy checks before a build runs."""
        return {"status": "ok"}

    return Service(app=app, db=db, effects=effects)
