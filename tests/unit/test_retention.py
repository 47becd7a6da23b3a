"""Retention: the event log, the monitoring records and the customers' messages of ended sagas
are deleted once older than the retention, while the consumers run, and nothing else is."""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.eventbus import open_event_bus
from infra.eventbus.sqlite_log import SqliteEventLog
from infra.settings import DEFAULT_DATA_RETENTION, Settings
from infra.settings_cli import load_settings
from ordersaga.consumers import runner
from ordersaga.consumers.monitoring import MonitoringStore
from ordersaga.consumers.notifications import NotificationStore
from ordersaga.consumers.runner import open_consumers, prune_interval, run_consumers
from tests.support.saga_events import Saga, confirmed, declined

NOW = datetime.now(UTC)
AN_HOUR_AGO = NOW - timedelta(hours=1)


def events_in(log: Path) -> int:
    with sqlite3.connect(log) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


async def test_the_log_keeps_what_was_published_since_the_cutoff(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "events.db")
    old, new = confirmed("A1", 100, "USD", took_s=4), confirmed("B2", 100, "USD", took_s=4)
    await log.publish(old.events)
    cutoff = datetime.now(UTC)
    await log.publish(new.events)
    await log.consume("monitoring", _ignore, stop_when_idle=True)
    assert await log.prune(cutoff) == len(old.events)
    assert events_in(log.path) == len(new.events)


async def test_a_log_made_before_publishing_times_were_kept_is_brought_up_to_date(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    with sqlite3.connect(path) as conn:  # the schema of earlier releases
        conn.executescript(
            "CREATE TABLE events (position INTEGER PRIMARY KEY AUTOINCREMENT,"
            " event_id TEXT NOT NULL UNIQUE, order_id TEXT NOT NULL, sequence INTEGER NOT NULL,"
            " type TEXT NOT NULL, body TEXT NOT NULL);"
            "CREATE TABLE consumer_offsets (consumer TEXT PRIMARY KEY, position INTEGER NOT NULL);"
        )
        event = confirmed("A1", 100, "USD", took_s=4).events[0]
        conn.execute(
            "INSERT INTO events (event_id, order_id, sequence, type, body) VALUES (?, ?, ?, ?, ?)",
            (event.event_id, event.order_id, event.sequence, event.type, event.model_dump_json()),
        )
    log = SqliteEventLog(path)
    await log.publish(confirmed("B2", 100, "USD", took_s=4).events)
    await log.consume("monitoring", _ignore, stop_when_idle=True)
    assert await log.prune(AN_HOUR_AGO) == 1  # the event of unknown age counts as old
    assert events_in(path) == 5


def test_the_stores_forget_sagas_that_ended_before_the_cutoff(tmp_path: Path) -> None:
    long_ago, lately = NOW - timedelta(days=8), NOW - timedelta(minutes=5)
    sagas = [
        confirmed("old-confirmed", 100, "USD", took_s=4, start=long_ago),
        declined("old-declined", 100, took_s=6, start=long_ago),
        confirmed("new-confirmed", 100, "USD", took_s=4, start=lately),
        Saga("old-running", long_ago).started(100),  # started long ago, still running
    ]
    monitoring, notifications = (
        MonitoringStore(tmp_path / "m.db"),
        NotificationStore(tmp_path / "n.db"),
    )
    for event in (event for saga in sagas for event in saga.events):
        monitoring.apply(event)
        notifications.apply(event)

    assert monitoring.prune(NOW - timedelta(days=7)) == 2
    assert notifications.prune(NOW - timedelta(days=7)) == 2
    assert monitoring.record("old-confirmed") is None
    assert monitoring.record("old-declined") is None
    assert monitoring.record("new-confirmed") is not None
    assert monitoring.record("old-running") is not None
    assert [n.order_id for n in notifications.notifications()] == ["new-confirmed"]
    # What was noted for a running order stays, so that its message can still be written.
    charged = confirmed("old-running", 100, "USD", took_s=4, start=long_ago).events[1:]
    for event in charged:
        notifications.apply(event)
    assert {n.order_id for n in notifications.notifications()} == {"new-confirmed", "old-running"}


async def test_the_consumers_prune_while_they_follow_the_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}?poll_interval_s=0.01"
    ended = [confirmed(f"A{i}", 100, "USD", took_s=4, start=AN_HOUR_AGO) for i in range(3)]
    running = Saga("B1", AN_HOUR_AGO).started(100)
    bus = open_event_bus(url)
    await bus.publish([event for saga in [*ended, running] for event in saga.events])
    consumers = open_consumers(tmp_path)
    follow = asyncio.create_task(
        run_consumers(bus, consumers, once=False, retention=timedelta(milliseconds=200))
    )
    monitoring = MonitoringStore.in_folder(tmp_path)
    try:
        async with asyncio.timeout(10):
            while events_in(tmp_path / "events.db") or monitoring.record("A0"):
                await asyncio.sleep(0.05)  # polls: the pruning's own interval is 50 ms
        assert not follow.done()
    finally:
        follow.cancel()
        await bus.close()
    assert NotificationStore.in_folder(tmp_path).notifications() == []
    assert monitoring.record("B1") is not None  # running: kept, whatever its age


def test_retention_is_read_in_seconds_or_iso_8601() -> None:
    assert Settings().data_retention == DEFAULT_DATA_RETENTION == timedelta(days=7)
    assert Settings(data_retention="PT10M").data_retention == timedelta(minutes=10)
    assert Settings(data_retention="90").data_retention == timedelta(seconds=90)
    assert prune_interval(timedelta(seconds=2)) == 0.5
    assert prune_interval(DEFAULT_DATA_RETENTION) == 60.0


@pytest.mark.parametrize("value", ["0", "-5", "a week"])
def test_a_bad_retention_is_refused_naming_the_flag(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    args = parser.parse_args(["--data-retention", value])
    with pytest.raises(SystemExit) as exit_:
        load_settings(args, "order-saga consumers")
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("order-saga consumers: error: --data-retention: ")
    assert "Traceback" not in error


async def _ignore(_event: object) -> None:
    pass
