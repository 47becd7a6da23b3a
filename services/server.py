"""Serve the stand-in services over HTTP with uvicorn."""

from __future__ import annotations

import argparse
import errno
import socket
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from ordersaga.logs import configure_logging
from ordersaga.settings import DEFAULT_SERVICES_PORT, Group
from ordersaga.settings_cli import add_settings, load_settings
from ordersaga.tracing import configure_tracing
from services.app import create_app
from services.faults import NO_FAULTS, FaultSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_DATA_DIR = Path("data")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port` (port 0: any free port).

    Binding before uvicorn starts turns a taken port into one clear sentence instead of a log
    line from deep inside uvicorn's startup.

    Raises:
        SystemExit: The port is taken or the address cannot be bound, with a one-line message.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on accepted connections only
    # when it sees a TCP socket, and without it every keep-alive request waits 40 ms for the
    # client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise SystemExit(
                f"error: port {port} on {host} is already in use"
                " (is another `order-saga services` running?)"
            ) from None
        raise SystemExit(f"error: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    return sock


def run(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_SERVICES_PORT,
    data_dir: Path = DEFAULT_DATA_DIR,
    faults: FaultSettings = NO_FAULTS,
    log_level: str = "info",
) -> None:
    """Serve all four services until interrupted (Ctrl-C or SIGTERM).

    Args:
        host: Interface to listen on.
        port: TCP port to listen on.
        data_dir: Folder of the services' database files.
        faults: Fault settings every service starts with.
        log_level: uvicorn's own log level.

    Raises:
        SystemExit: The port is taken, with a one-line message.
    """
    sock = bind_socket(host, port)
    # No access log: the services log each effect themselves, and at saga throughput a line per
    # request is mostly noise.
    config = uvicorn.Config(
        create_app(data_dir, faults), host=host, port=port, log_level=log_level, access_log=False
    )
    uvicorn.Server(config).run(sockets=[sock])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the services' options: where they listen, their data folder, logging and faults."""
    add_settings(parser, Group.SERVICES_SERVER, Group.DATA)
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
        error = exc.errors()[0]
        parser.error(f"--{str(error['loc'][0]).replace('_', '-')}: {error['msg']}")
    settings = load_settings(args, parser.prog)
    configure_logging(settings.logging_level, json=settings.log_json)
    # FastAPI traces each request itself once a tracer provider is set (its native telemetry),
    # joining the caller's trace through the `traceparent` header.
    configure_tracing("order-saga-services")
    run(settings.services_host, settings.services_port, settings.data_dir, faults)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the services from the command line: `python -m services --port N --data-dir D`."""
    parser = argparse.ArgumentParser(
        prog="python -m services",
        description="Run the stand-in Inventory, Payment, Shipping and Order services.",
    )
    add_arguments(parser)
    run_from_args(parser, parser.parse_args(argv))
