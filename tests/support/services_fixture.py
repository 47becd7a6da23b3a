"""Run the stand-in services in-process for a test: `with running_services(tmp_path) as url:`."""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn

from infra.settings import DEFAULT_DATA_RETENTION
from infra.sockets import listening_socket
from services.app import create_app
from services.faults import NO_FAULTS, FaultSettings
from services.retention import OrderRetention
from workflows.order_steps import SERVICES

#: A delivery address the stand-in Shipping service serves.
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "line2": "",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}


@contextmanager
def running_services(
    data_dir: Path,
    faults: FaultSettings = NO_FAULTS,
    *,
    startup_timeout_s: float = 10.0,
    event_bus: str | None = None,
    retention: timedelta = DEFAULT_DATA_RETENTION,
) -> Iterator[str]:
    """Serve all four services from `data_dir` on a free loopback port; yield the base URL.

    With `event_bus`, they forget ended orders a `retention` after their end.

    The server runs on a background thread and is stopped (in-flight requests finished) when
    the block ends. The URL is yielded only once `GET /healthz` answers.
    """
    sock = listening_socket("127.0.0.1", 0, "stand-in services")
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(data_dir, faults, event_bus=event_bus, retention=retention)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="services", daemon=True
    )
    thread.start()
    try:
        _wait_until_healthy(base_url, thread, startup_timeout_s)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def retentions(data_dir: Path) -> list[OrderRetention]:
    """Every service's forgetting of ended orders, on its database in `data_dir`."""
    return [
        importlib.import_module(f"services.{name}").create_app(data_dir).state.retention
        for name in SERVICES
    ]


def _wait_until_healthy(base_url: str, thread: threading.Thread, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=base_url, timeout=1.0) as client:
        while True:
            if not thread.is_alive():
                raise RuntimeError("the services' server thread ended during startup")
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"services at {base_url} not healthy after {timeout_s} s")
            time.sleep(0.01)
