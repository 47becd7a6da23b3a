"""`order-saga`: the project's operational commands."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from ordersaga.devserver import PortInUseError
from ordersaga.logs import configure_logging
from ordersaga.ops.demo import demo as run_demo
from ordersaga.settings import DEFAULT_SERVICES_PORT
from ordersaga.temporal import exit_process
from services import server as services_server


def main(argv: list[str] | None = None) -> None:
    """Entry point of `order-saga`."""
    parser = argparse.ArgumentParser(prog="order-saga", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="run the dev server, services and a worker; place one order per saga path"
    )
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data"),
        help="databases and logs [default %(default)s]",
    )
    demo.add_argument("--temporal-port", type=int, default=7233, help="[default %(default)s]")
    demo.add_argument("--ui-port", type=int, default=8233, help="[default %(default)s]")
    demo.add_argument(
        "--services-port", type=int, default=DEFAULT_SERVICES_PORT, help="[default %(default)s]"
    )
    demo.add_argument(
        "--exit",
        action="store_true",
        help="stop everything once the table is printed instead of waiting for Ctrl-C",
    )
    services = commands.add_parser(
        "services", help="run the stand-in Inventory, Payment, Shipping and Order services"
    )
    services_server.add_arguments(services)
    args = parser.parse_args(argv)
    if args.command == "services":
        services_server.run_from_args(services, args)
        return

    # The demo talks to the terminal; its parts log to files in the data folder.
    args.data_dir.mkdir(parents=True, exist_ok=True)
    configure_logging(json=True, stream=(args.data_dir / "worker.log").open("a"))
    try:
        asyncio.run(
            run_demo(
                args.data_dir,
                temporal_port=args.temporal_port,
                ui_port=args.ui_port,
                services_port=args.services_port,
                stay=not args.exit,
            )
        )
    except PortInUseError as err:
        print(f"error: {err}", file=sys.stderr)
        exit_process(1)
    exit_process(0)
