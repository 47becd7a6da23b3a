"""Saga events end to end: a known mix of orders through a real worker, on both event buses.

Each consumer sees exactly the expected events of every order, in order, with no gap after it
restarts; the monitoring and notifications consumers turn them into the right figures and
customer messages.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError

from activities.http import create_http_client
from domain.events import SagaEvent, SagaEventType
from domain.order import OrderRequest
from infra.eventbus import open_event_bus
from infra.settings import DEFAULT_DATA_RETENTION, ServiceUrls
from ops.stack import current_worker
from ordersaga.consumers.figures import figures
from ordersaga.consumers.monitoring import MonitoringStore
from ordersaga.consumers.notifications import NotificationKind, NotificationStore
from ordersaga.consumers.runner import open_consumers, run_consumers
from ordersaga.order_desk import start_saga
from tests.support.orders import DECLINED_TOKEN, FAST_POLICY, UNSERVED_POSTAL_CODE, make_order
from tests.support.redis_server import running_redis

E = SagaEventType
CONFIRMED = [
    E.ORDER_SAGA_STARTED,
    "InventoryReserved",
    "PaymentCharged",
    "ShippingScheduled",
    "OrderConfirmed",
]
DECLINED = [
    E.ORDER_SAGA_STARTED,
    "InventoryReserved",
    E.SAGA_FAILED,
    "InventoryReleased",
    E.SAGA_COMPENSATED,
]
SHIPPING_REFUSED = [
    E.ORDER_SAGA_STARTED,
    "InventoryReserved",
    "PaymentCharged",
    E.SAGA_FAILED,
    "PaymentRefunded",
    "InventoryReleased",
    E.SAGA_COMPENSATED,
]


def the_mix() -> list[tuple[OrderRequest, list[str]]]:
    """7 confirmed, 2 declined, 1 refused by shipping, as the issue's example mix."""
    unserved = make_order().shipping_address.model_dump() | {"postal_code": UNSERVED_POSTAL_CODE}
    declined = {"token": DECLINED_TOKEN, "last4": "0002"}
    return (
        [(make_order(policy=FAST_POLICY), CONFIRMED) for _ in range(7)]
        + [(make_order(payment=declined, policy=FAST_POLICY), DECLINED) for _ in range(2)]
        + [(make_order(shipping_address=unserved, policy=FAST_POLICY), SHIPPING_REFUSED)]
    )


@pytest.fixture(params=["sqlite", "redis"])
async def bus_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'events.db'}"
    else:
        with running_redis(tmp_path) as url:
            yield f"{url}?stream=saga-events"


async def read_all(url: str, consumer: str, crash_after: int | None = None) -> list[SagaEvent]:
    """What `consumer` is fed from a new connection to the bus, until caught up or crashed."""
    seen: list[SagaEvent] = []

    async def handle(event: SagaEvent) -> None:
        if crash_after is not None and len(seen) == crash_after:
            raise RuntimeError("consumer crashed")
        seen.append(event)

    bus = open_event_bus(url)
    try:
        with contextlib.suppress(RuntimeError):
            await bus.consume(consumer, handle, stop_when_idle=True)
    finally:
        await bus.close()
    return seen


async def test_a_known_mix_gives_each_consumer_exactly_its_events(
    client: Client, services_url: str, bus_url: str, tmp_path: Path
) -> None:
    mix = the_mix()
    task_queue = f"events-{uuid.uuid4().hex[:8]}"
    bus = open_event_bus(bus_url)
    async with (
        create_http_client() as http,
        current_worker(client, task_queue, http, ServiceUrls.from_base(services_url), bus),
    ):
        sagas = [await start_saga(client, order, task_queue) for order, _ in mix]
        for saga in sagas:
            with contextlib.suppress(WorkflowFailureError):
                await saga.result()
    await bus.close()

    # A reader that crashes part-way and restarts misses nothing.
    first = await read_all(bus_url, "reader", crash_after=17)
    rest = await read_all(bus_url, "reader")
    by_order: dict[str, list[SagaEvent]] = defaultdict(list)
    for event in first + rest:
        if not by_order[event.order_id] or by_order[event.order_id][-1] != event:
            by_order[event.order_id].append(event)
    assert len(first) == 17
    for order, expected in mix:
        events = by_order[order.order_id]
        assert [e.type for e in events] == expected, order.order_id
        assert [e.sequence for e in events] == list(range(1, len(expected) + 1))

    # The business's consumers, fed from the same bus, agree.
    data = tmp_path / "consumers"
    data.mkdir()
    consumers_bus = open_event_bus(bus_url)
    try:
        handled = await run_consumers(
            consumers_bus, open_consumers(data), once=True, retention=DEFAULT_DATA_RETENTION
        )
    finally:
        await consumers_bus.close()
    assert set(handled.values()) == {sum(len(expected) for _, expected in mix)}
    notes = NotificationStore.in_folder(data).notifications()
    assert sorted((n.order_id, n.kind) for n in notes) == sorted(
        (
            order.order_id,
            NotificationKind.CONFIRMED if expected is CONFIRMED else NotificationKind.CANCELLED,
        )
        for order, expected in mix
    )
    seen = figures(MonitoringStore.in_folder(data), datetime.now(UTC), timedelta(hours=1))
    assert (seen.ended, seen.confirmed, seen.aborted, seen.compensated) == (10, 7, 3, 3)
    assert seen.success_rate == pytest.approx(0.7)
    assert seen.active == 0
