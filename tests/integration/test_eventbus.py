"""The event bus contract, run against both buses: the SQLite log and Redis Streams."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from domain.events import SagaEvent
from infra.eventbus import EventBus, UnknownEventBusError, open_event_bus
from infra.eventbus.redis_streams import RedisStreamsBus
from infra.eventbus.sqlite_log import SqliteEventLog
from tests.support.redis_server import running_redis
from tests.support.saga_events import Saga

#: Opens a new bus object on the test's store, as a restarted process would.
OpenBus = Callable[[], EventBus]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server for the whole session."""
    with running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(params=["sqlite", "redis"])
async def open_bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenBus]:
    """A factory of bus objects on one fresh store (a file, or a stream of its own)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.db'}?poll_interval_s=0.02"
    else:
        url = f"{request.getfixturevalue('redis_url')}?stream=test-{uuid.uuid4().hex}"
    opened: list[EventBus] = []

    def new_bus() -> EventBus:
        opened.append(open_event_bus(url))
        return opened[-1]

    yield new_bus
    for bus in opened:
        await bus.close()


def order_events(order_id: str, count: int) -> list[SagaEvent]:
    """`count` events of one order, numbered 1..count."""
    saga = Saga(order_id)
    for second in range(count):
        saga.add("InventoryReserved", second, reservation_id=f"r{second}")
    return saga.events


class Collector:
    """A handler that records the ids of the events it is given."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, event: SagaEvent) -> None:
        self.seen.append(event.event_id)


def ids(events: list[SagaEvent]) -> list[str]:
    return [event.event_id for event in events]


async def consume_all(bus: EventBus, consumer: str) -> list[str]:
    collector = Collector()
    count = await bus.consume(consumer, collector, stop_when_idle=True)
    assert count == len(collector.seen)
    return collector.seen


async def test_publish_is_idempotent(open_bus: OpenBus) -> None:
    bus = open_bus()
    events = order_events("A1", 4)
    await bus.publish(events[:3])
    await bus.publish(events[:3])
    await bus.publish(events[1:])  # overlaps: only the 4th is new
    await open_bus().publish(events)  # another publisher, the same events
    assert await consume_all(bus, "c") == ids(events)


async def test_order_is_kept_across_orders_and_batches(open_bus: OpenBus) -> None:
    bus = open_bus()
    a, b = order_events("A1", 5), order_events("B2", 5)
    batches = [a[:2], b[:1], a[2:3], b[1:4], a[3:], b[4:]]
    for batch in batches:
        await bus.publish(batch)
    assert await consume_all(bus, "c") == [e.event_id for batch in batches for e in batch]


async def test_every_consumer_sees_everything(open_bus: OpenBus) -> None:
    bus = open_bus()
    events = order_events("A1", 6)
    await bus.publish(events[:4])
    assert await consume_all(bus, "monitoring") == ids(events[:4])
    await bus.publish(events[4:])
    assert await consume_all(bus, "notifications") == ids(events)
    assert await consume_all(bus, "monitoring") == ids(events[4:])
    assert await consume_all(bus, "monitoring") == []


async def test_a_consumer_that_fails_resumes_with_the_event_it_was_handling(
    open_bus: OpenBus,
) -> None:
    events = order_events("A1", 10)
    await open_bus().publish(events)
    seen: list[str] = []

    async def crash_on_fifth(event: SagaEvent) -> None:
        seen.append(event.event_id)
        if event.sequence == 5:
            raise RuntimeError("consumer crashed")

    with pytest.raises(RuntimeError, match="consumer crashed"):
        await open_bus().consume("c", crash_on_fifth, stop_when_idle=True)
    seen += await consume_all(open_bus(), "c")  # a new process on the same store
    assert seen == ids(events[:5]) + ids(events[4:])  # no gap, the fifth twice


async def test_a_consumer_killed_mid_event_resumes_with_no_gap(open_bus: OpenBus) -> None:
    events = order_events("A1", 8)
    bus = open_bus()
    await bus.publish(events[:3])
    seen: list[str] = []
    stuck = asyncio.Event()

    async def stall_on_sixth(event: SagaEvent) -> None:
        seen.append(event.event_id)
        if event.sequence == 6:
            stuck.set()
            await asyncio.Event().wait()  # never returns: the process dies here

    live = asyncio.create_task(bus.consume("c", stall_on_sixth, stop_when_idle=False))
    await bus.publish(events[3:])  # published while the consumer waits for more
    async with asyncio.timeout(10):
        await stuck.wait()
    live.cancel()
    with pytest.raises(asyncio.CancelledError):
        await live
    seen += await consume_all(open_bus(), "c")
    assert seen == ids(events[:6]) + ids(events[5:])


async def test_pruning_deletes_only_what_every_consumer_has_handled(open_bus: OpenBus) -> None:
    events = order_events("A1", 6)
    bus = open_bus()
    await bus.publish(events)
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert await bus.prune(later) == 0  # no consumer yet: the first one will want everything
    assert await consume_all(bus, "fast") == ids(events)

    async def crash_on_fourth(event: SagaEvent) -> None:
        if event.sequence == 4:
            raise RuntimeError("consumer crashed")

    with pytest.raises(RuntimeError, match="consumer crashed"):
        await open_bus().consume("slow", crash_on_fourth, stop_when_idle=True)
    assert await bus.prune(datetime.now(UTC) - timedelta(hours=1)) == 0  # all too recent
    assert await bus.prune(later) == 3  # the three "slow" has handled
    assert await consume_all(open_bus(), "slow") == ids(events[3:])  # nothing lost
    assert await bus.prune(later) == 3
    await bus.publish(order_events("B2", 1))
    assert await consume_all(bus, "fast") == ids(order_events("B2", 1))


async def test_concurrent_publishers_keep_each_orders_order(open_bus: OpenBus) -> None:
    """Publishers race with overlapping batches, as retries and zombie attempts of sagas do.

    Each publisher walks each order's events in windows that overlap the previous one (and so
    never skip an event it has not published yet), all publishers at once.
    """
    orders = {f"O{n}": order_events(f"O{n}", 12) for n in range(5)}

    async def publisher(window: int, step: int) -> None:
        bus = open_bus()
        for start in range(0, 12, step):
            for events in orders.values():
                await bus.publish(events[start : start + window])

    await asyncio.gather(*(publisher(w, s) for w, s in [(3, 2), (4, 3), (5, 1), (12, 12)]))
    seen = await consume_all(open_bus(), "c")
    assert sorted(seen) == sorted(e.event_id for events in orders.values() for e in events)
    for order_id, events in orders.items():
        assert [i for i in seen if i.startswith(f"order-{order_id}:")] == ids(events)


async def test_urls_choose_the_bus(tmp_path: Path) -> None:
    absolute = open_event_bus(f"sqlite:///{tmp_path / 'a' / 'events.db'}")
    assert isinstance(absolute, SqliteEventLog)
    assert absolute.path == tmp_path / "a" / "events.db"
    redis_bus = open_event_bus("redis://127.0.0.1:1/3?stream=orders&dedupe_ttl_s=60")
    assert isinstance(redis_bus, RedisStreamsBus)
    assert (redis_bus.stream, redis_bus.dedupe_ttl.total_seconds()) == ("orders", 60)
    await redis_bus.close()
    with pytest.raises(UnknownEventBusError, match="unknown event bus 'kafka://x'"):
        open_event_bus("kafka://x")
    with pytest.raises(ValueError, match=re.escape("sqlite:///path/to/events.db")):
        open_event_bus("sqlite://host/events.db")


def test_a_relative_sqlite_path_is_relative_to_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bus = open_event_bus("sqlite:///data/events.db")
    assert isinstance(bus, SqliteEventLog)
    assert bus.path == Path("data/events.db")
    assert (tmp_path / "data" / "events.db").exists()


async def test_a_publish_never_blocks_the_event_loop_on_another_processs_lock(
    tmp_path: Path,
) -> None:
    """While another connection holds the log's write lock, the loop runs on; then it lands."""
    bus = SqliteEventLog(tmp_path / "events.db")
    holder = sqlite3.connect(tmp_path / "events.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # as another worker or a consumer mid-commit
    events = order_events("L1", 2)

    publishing = asyncio.create_task(bus.publish(events))
    ticks = 0
    for _ in range(5):  # the loop keeps turning: the publish waits on a thread
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks == 5
    assert not publishing.done()

    holder.execute("COMMIT")
    await asyncio.wait_for(publishing, 10)
    assert await consume_all(bus, "after") == ids(events)
