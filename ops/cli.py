"""`order-saga`: the project's operational commands."""

from __future__ import annotations

import argparse
import asyncio
from typing import NoReturn

from infra.codec_server import run_codec_server
from infra.exits import run_to_exit
from infra.keyring import new_key_entry
from infra.logs import configure_logging
from infra.settings import Group
from infra.settings_cli import add_settings, load_settings
from ops import dashboard
from ops.commands import COMMANDS as OPS_COMMANDS
from ops.demo import demo as run_demo
from ops.demo import ensure_ports_free
from ordersaga.api.server import run_api
from ordersaga.consumers import runner as consumers_runner
from services import server as services_server


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of `order-saga`: run the command, then end the process with its exit code."""
    run_to_exit(lambda: run(argv))


def run(argv: list[str] | None = None) -> int:
    """Run the `order-saga` command line `argv`; its exit code.

    Raises:
        StartFailure: The command could not start (`main` reports it in one line).
    """
    parser = argparse.ArgumentParser(prog="order-saga", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="run the dev server, services and a worker; place one order per saga path"
    )
    add_settings(
        demo,
        Group.DATA,
        Group.RETENTION,
        Group.DEMO,
        Group.SERVICES_SERVER,
        Group.CODEC,
        Group.CODEC_SERVER,
        Group.API,
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
    codec_server = commands.add_parser(
        "codec-server", help="serve /decode and /encode of payloads for the Temporal Web UI"
    )
    add_settings(codec_server, Group.CODEC, Group.CODEC_SERVER, Group.DATA)
    api = commands.add_parser(
        "api", help="serve the Order API and its checkout and operator pages over HTTP"
    )
    add_settings(api, Group.TEMPORAL, Group.TLS, Group.CODEC, Group.API, Group.DATA)
    codec_key = commands.add_parser(
        "codec-key", help="print a new payload key entry (KEY_ID:BASE64_KEY) for a keyring"
    )
    codec_key.add_argument("key_id", help="the new key's id, e.g. k2")
    consumers = commands.add_parser(
        "consumers", help="feed the monitoring and notifications consumers from the event bus"
    )
    consumers_runner.add_arguments(consumers)
    dashboard_parser = commands.add_parser(
        "dashboard", help="saga figures from the monitoring store, refreshing in the terminal"
    )
    dashboard.add_arguments(dashboard_parser)
    for add_command, _ in OPS_COMMANDS.values():
        add_command(commands)
    args = parser.parse_args(argv)
    if args.command in OPS_COMMANDS:
        return asyncio.run(OPS_COMMANDS[args.command][1](args))
    if args.command == "services":
        services_server.run_from_args(services, args)
    elif args.command == "codec-server":
        run_codec_server(load_settings(args, "order-saga codec-server"))
    elif args.command == "api":
        asyncio.run(run_api(load_settings(args, "order-saga api")))
    elif args.command == "codec-key":
        print(new_key_entry(args.key_id))
    elif args.command == "consumers":
        consumers_runner.run_from_args(args)
    elif args.command == "dashboard":
        dashboard.run_from_args(args)
    else:
        settings = load_settings(args, "order-saga demo")
        ensure_ports_free(settings)
        # The demo talks to the terminal; its parts log to files in the data folder.
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        configure_logging(json=True, stream=(settings.data_dir / "worker.log").open("a"))
        asyncio.run(run_demo(settings, stay=not args.exit))
    return 0


if __name__ == "__main__":
    main()
