"""`order-saga consumers`: feed the monitoring and notifications consumers from the event bus."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from infra.eventbus import EventBus, open_event_bus
from infra.log_files import LogFiles
from infra.logs import configure_logging
from infra.settings import Group, Settings
from infra.settings_cli import add_settings, load_settings
from ordersaga.consumers import Consumer
from ordersaga.consumers.monitoring import MonitoringConsumer, MonitoringStore
from ordersaga.consumers.notifications import NotificationsConsumer, NotificationStore

log = structlog.get_logger(__name__)


def open_consumers(data_dir: Path) -> list[Consumer]:
    """The business's two consumers, each with its store in `data_dir`."""
    return [
        MonitoringConsumer(MonitoringStore.in_folder(data_dir)),
        NotificationsConsumer(NotificationStore.in_folder(data_dir)),
    ]


async def run_consumers(
    bus: EventBus,
    consumers: Sequence[Consumer],
    *,
    once: bool,
    retention: timedelta,
    logs: LogFiles | None = None,
) -> dict[str, int]:
    """Feed every consumer from `bus`, side by side, each from its own saved position.

    What ended sagas left is pruned as it passes `retention`, and `logs` are rolled: every
    `prune_interval` while following, once at the end with `once`.

    Args:
        bus: The event bus.
        consumers: The consumers; their names must differ.
        once: Return when all are caught up, instead of waiting for more events.
        retention: How long the bus and the consumers' stores keep what ended sagas left.
        logs: The log files of the data folder, if they are to be kept for the retention too.

    Returns:
        How many events each consumer handled, by name.

    Raises:
        ExceptionGroup: A consumer's handler failed; the others were stopped (each resumes at
            its saved position next time).
    """
    async with asyncio.TaskGroup() as group:
        tasks = {
            c.name: group.create_task(bus.consume(c.name, c.handle, stop_when_idle=once))
            for c in consumers
        }
        if not once:
            interval = prune_interval(retention)
            group.create_task(_prune_every(interval, bus, consumers, retention, logs))
    if once:
        await prune(bus, consumers, retention, logs)
    return {name: task.result() for name, task in tasks.items()}


def prune_interval(retention: timedelta) -> float:
    """Seconds between prunings.

    Often enough that the stores outgrow their retention by a quarter at most, and at least
    every `MAX_PRUNE_INTERVAL_S`.
    """
    return min(retention.total_seconds() / 4, MAX_PRUNE_INTERVAL_S)


#: The longest wait between two prunings, whatever the retention: each deletes a little.
MAX_PRUNE_INTERVAL_S = 60.0


async def prune(
    bus: EventBus,
    consumers: Sequence[Consumer],
    retention: timedelta,
    logs: LogFiles | None = None,
) -> None:
    """Delete from the bus and the consumers' stores what is older than `retention`; roll `logs`."""
    now = datetime.now(UTC)
    before = now - retention
    pruned = {"events": await bus.prune(before)}
    pruned |= {c.name: await c.prune(before) for c in consumers}
    if any(pruned.values()):
        log.info("pruned", older_than=before.isoformat(timespec="seconds"), **pruned)
    if logs and (rolled := await asyncio.to_thread(logs.roll, before, now)):
        log.info("rolled logs", logs=rolled)


async def _prune_every(
    seconds: float,
    bus: EventBus,
    consumers: Sequence[Consumer],
    retention: timedelta,
    logs: LogFiles | None,
) -> None:
    # The first pruning waits an interval: by then every consumer has named itself to the
    # bus, which keeps what a consumer has not handled.
    while True:
        await asyncio.sleep(seconds)
        await prune(bus, consumers, retention, logs)


async def consume(
    event_bus_url: str, data_dir: Path, *, once: bool, retention: timedelta
) -> dict[str, int]:
    """Open the bus at `event_bus_url` and run the consumers with stores in `data_dir`."""
    bus = open_event_bus(event_bus_url)
    try:
        await bus.check()
        log.info(
            "consuming saga events",
            event_bus=_without_password(event_bus_url),
            data_dir=str(data_dir),
            retention=str(retention),
        )
        consumers = open_consumers(data_dir)
        return await run_consumers(
            bus, consumers, once=once, retention=retention, logs=LogFiles(data_dir)
        )
    finally:
        await bus.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's flags: the data folder, the event bus, `--once`."""
    add_settings(parser, Group.DATA, Group.RETENTION)
    add_event_bus_option(parser)
    parser.add_argument("--once", action="store_true", help="stop once every consumer is caught up")


def add_event_bus_option(parser: argparse.ArgumentParser) -> None:
    """Add `--event-bus`, for a process that follows the saga events (`EVENT_BUS`)."""
    parser.add_argument(
        "--event-bus",
        dest="event_bus",
        metavar="URL",
        default=argparse.SUPPRESS,  # unset leaves EVENT_BUS and the default to the settings
        help=f"{Settings.model_fields['event_bus'].description} [env EVENT_BUS]",
    )


def run_from_args(args: argparse.Namespace) -> None:
    """Run the consumers until Ctrl-C (or, with `--once`, until caught up)."""
    settings = load_settings(args, "order-saga consumers")
    configure_logging(settings.logging_level, json=settings.log_json)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: positions are saved per event
        handled = asyncio.run(
            consume(
                settings.event_bus_url,
                settings.data_dir,
                once=args.once,
                retention=settings.data_retention,
            )
        )
        log.info("caught up", handled=handled)


def _without_password(url: str) -> str:
    # A Redis URL may carry a password; logs must not.
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()
