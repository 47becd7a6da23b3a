"""Serve the stand-in services over HTTP with uvicorn."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from infra.eventbus import open_event_bus
from infra.exits import run_to_exit
from infra.logs import configure_logging
from infra.settings import DEFAULT_DATA_RETENTION, DEFAULT_SERVICES_PORT, Group
from infra.settings_cli import add_settings, load_settings
from infra.sockets import listening_socket
from infra.tracing import configure_tracing
from ordersaga.consumers.runner import add_event_bus_option
from services.app import create_app
from services.faults import NO_FAULTS, FaultSettings, option_error

DEFAULT_HOST = "127.0.0.1"
DEFAULT_DATA_DIR = Path("data")

#: The option of each fault setting: the field's name as a flag (`--latency-ms`).
FAULT_OPTIONS = {name: f"--{name.replace('_', '-')}" for name in FaultSettings.model_fields}


def run(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_SERVICES_PORT,
    data_dir: Path = DEFAULT_DATA_DIR,
    faults: FaultSettings = NO_FAULTS,
    log_level: str = "info",
    *,
    event_bus: str | None = None,
    retention: timedelta = DEFAULT_DATA_RETENTION,
) -> None:
    """Serve all four services until interrupted (Ctrl-C or SIGTERM).

    Args:
        host: Interface to listen on.
        port: TCP port to listen on.
        data_dir: Folder of the services' database files.
        faults: Fault settings every service starts with.
        log_level: uvicorn's own log level.
        event_bus: The saga events' bus, to learn which orders ended; without one, every
            record is kept.
        retention: How long after its saga ended an order's records are kept.

    Raises:
        PortInUseError: The port is taken.
        EventBusUnreachable: The event bus does not answer.
    """
    sock = listening_socket(host, port, "stand-in services, SERVICES_PORT")
    if event_bus is not None:
        asyncio.run(_check(event_bus))
    # No access log: the services log each effect themselves, and at saga throughput a line per
    # request is mostly noise.
    config = uvicorn.Config(
        create_app(data_dir, faults, event_bus=event_bus, retention=retention),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        # Named rather than "auto", which falls back to h11 and asyncio's loop without a word.
        http="httptools",
        loop="uvloop",
    )
    uvicorn.Server(config).run(sockets=[sock])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the services' options: where they listen, their data folder, logging and faults."""
    add_settings(parser, Group.SERVICES_SERVER, Group.DATA, Group.RETENTION)
    add_event_bus_option(parser)
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="chance, 0..1, that a mutating call fails"
    )
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="latency added to every mutating call"
    )


def run_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """`run` with the options `add_arguments` added; bad values end in `parser.error`."""
    try:
        faults = FaultSettings(error_rate=args.error_rate, latency_ms=args.latency_ms)
    except ValidationError as exc:
        parser.error(option_error(exc, FAULT_OPTIONS))
    settings = load_settings(args, parser.prog)
    configure_logging(settings.logging_level, json=settings.log_json)
    # FastAPI traces each request itself once a tracer provider is set (its native telemetry),
    # joining the caller's trace through the `traceparent` header.
    configure_tracing("order-saga-services")
    run(
        settings.services_host,
        settings.services_port,
        settings.data_dir,
        faults,
        event_bus=settings.event_bus_url,
        retention=settings.data_retention,
    )


async def _check(event_bus: str) -> None:
    bus = open_event_bus(event_bus)
    try:
        await bus.check()
    finally:
        await bus.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the services from the command line: `python -m services --port N --data-dir D`."""
    parser = argparse.ArgumentParser(
        prog="python -m services",
        description="Run the stand-in Inventory, Payment, Shipping and Order services.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    run_to_exit(lambda: run_from_args(parser, args))
