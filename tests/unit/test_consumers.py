"""The monitoring and notifications consumers, fed hand-made sagas through the SQLite log."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from domain.events import SagaEvent, SagaEventType
from infra.eventbus import open_event_bus
from ops import cli, dashboard
from ordersaga.consumers.figures import Figures, figures, percentile
from ordersaga.consumers.messages import REASONS, REASONS_BY_STEP
from ordersaga.consumers.monitoring import MonitoringStore, Outcome
from ordersaga.consumers.notifications import NotificationKind, NotificationStore
from ordersaga.consumers.runner import consume, open_consumers
from ports.contract import ALREADY_COMPENSATED
from tests.support.saga_events import T0, Saga, confirmed, declined, sold_out, unserved, withdrawn
from workflows.order_steps import ORDER_STEPS, REFUSALS

#: Two confirmed (USD), a declined card, a sold-out item, an unserved address (EUR, charged and
#: refunded), one saga waiting for an operator, one still at its first step, and one withdrawn
#: by the customer.
SAGAS = [
    confirmed("A1", 4500, "USD", took_s=4),
    declined("A2", 1500, took_s=6, start=T0 + timedelta(seconds=10)),
    sold_out("A3", 500, took_s=2, start=T0 + timedelta(seconds=20)),
    unserved("A4", 2000, "EUR", took_s=8, start=T0 + timedelta(seconds=30)),
    Saga("A5", T0 + timedelta(seconds=40))
    .started(1500)
    .add("InventoryReserved", 1, reservation_id="res-A5")
    .failed(30, "charge_payment", "ServiceUnavailable")
    .add(
        SagaEventType.COMPENSATION_NEEDS_ATTENTION,
        40,
        compensation="release_inventory",
        reason="ServiceUnavailable: 503",
    ),
    Saga("A6", T0 + timedelta(seconds=50)).started(899),
    confirmed("A7", 1000, "USD", took_s=10, start=T0 + timedelta(seconds=60)),
    withdrawn("A8", 2500, took_s=3, start=T0 + timedelta(seconds=70)),
]
EVENTS = [event for saga in SAGAS for event in saga.events]
NOW = T0 + timedelta(minutes=10)

#: These sagas ran at fixed times, long enough ago for the default retention to prune them.
KEEP_EVERYTHING = timedelta(days=3650)


async def feed(data_dir: Path, events: list[SagaEvent]) -> dict[str, int]:
    """Publish `events` on the data folder's log and run both consumers until caught up."""
    url = f"sqlite:///{data_dir / 'events.db'}"
    bus = open_event_bus(url)
    await bus.publish(events)
    await bus.close()
    return await consume(url, data_dir, once=True, retention=KEEP_EVERYTHING)


@pytest.fixture
async def data_dir(tmp_path: Path) -> Path:
    """A data folder whose consumers have seen every saga, with duplicates and a restart.

    Half the events go out, the consumers catch up and stop; then everything is published
    again (the first half as duplicates) and new consumer objects, as a restarted process
    would make, take it from there. Last, every event is handed to the consumers once more, as
    a bus that lost its positions would.
    """
    half = len(EVENTS) // 2
    assert await feed(tmp_path, EVENTS[:half]) == {"monitoring": half, "notifications": half}
    rest = len(EVENTS) - half
    assert await feed(tmp_path, EVENTS) == {"monitoring": rest, "notifications": rest}
    for consumer in open_consumers(tmp_path):
        for event in EVENTS:
            await consumer.handle(event)
    return tmp_path


def test_monitoring_keeps_each_sagas_record(data_dir: Path) -> None:
    store = MonitoringStore.in_folder(data_dir)
    a4 = store.record("A4")
    assert a4 is not None
    assert (a4.outcome, a4.failed_step, a4.reason_type) == (
        Outcome.ABORTED,
        "schedule_shipment",
        "ShippingUnavailable",
    )
    assert (a4.total, a4.currency, a4.compensations) == (
        2000,
        "EUR",
        ("refund_payment", "release_inventory"),
    )
    assert a4.duration == timedelta(seconds=8)
    a3 = store.record("A3")
    assert a3 is not None
    assert (a3.outcome, a3.compensations, a3.last_event) == (
        Outcome.FAILED,
        (),
        "SagaCompensated",
    )
    a5 = store.record("A5")
    assert a5 is not None
    assert (a5.outcome, a5.needs_attention, a5.last_sequence) == (None, True, 4)
    a8 = store.record("A8")
    assert a8 is not None
    assert (a8.outcome, a8.failed_step, a8.reason_type, a8.compensations) == (
        Outcome.WITHDRAWN,
        None,
        "OrderWithdrawn",
        ("release_inventory",),
    )


def test_the_figures_are_exact(data_dir: Path) -> None:
    shown = figures(MonitoringStore.in_folder(data_dir), NOW, timedelta(hours=1))
    assert shown == Figures(
        now=NOW,
        window=timedelta(hours=1),
        started=8,
        ended=6,
        confirmed=2,
        aborted=2,
        failed=1,
        withdrawn=1,
        cancelled=0,
        compensated=3,
        active=2,
        needs_attention=1,
        success_rate=2 / 6,
        error_rate=3 / 6,  # the withdrawal is nobody's failure
        compensation_rate=3 / 6,
        average_duration_s=(4 + 6 + 2 + 8 + 10 + 3) / 6,
        p95_latency_s=10.0,
        orders_per_min=8 / 60,
        revenue_per_hour={"USD": 5500.0},  # EUR A4 was refunded: no revenue
    )


def test_the_figures_cover_only_their_window(data_dir: Path) -> None:
    store = MonitoringStore.in_folder(data_dir)
    later = figures(store, T0 + timedelta(hours=2), timedelta(hours=1))
    assert (later.started, later.ended, later.active, later.needs_attention) == (0, 0, 2, 1)
    assert (later.success_rate, later.p95_latency_s, later.revenue_per_hour) == (None, None, {})
    # 35 s after T0: A1 (ended at 4 s), A2 (16 s) and A3 (22 s) have ended; A4 started at 30 s.
    early = figures(store, T0 + timedelta(seconds=35), timedelta(minutes=30))
    assert (early.started, early.ended, early.confirmed, early.active) == (4, 3, 1, 1)
    assert early.revenue_per_hour == {"USD": 4500 * 2.0}


def test_monitoring_ignores_duplicates_and_stale_events(tmp_path: Path) -> None:
    store = MonitoringStore(tmp_path / "m.db")
    saga = declined("B1", 1000, took_s=6)
    assert all(store.apply(event) for event in saga.events)
    assert not store.apply(saga.events[-1])  # the same event again
    stale = saga.events[2].model_copy(update={"event_id": "order-B1:3-copy"})
    assert not store.apply(stale)  # a different id, but not newer than the record
    record = store.record("B1")
    assert record is not None
    assert (record.outcome, record.last_sequence) == (Outcome.ABORTED, 5)


def test_percentile_by_nearest_rank() -> None:
    assert percentile([], 95) is None
    assert percentile([7.0], 95) == 7.0
    ordered = [float(n) for n in range(1, 21)]  # 1..20
    assert percentile(ordered, 95) == 19.0
    assert percentile(ordered, 50) == 10.0


def test_one_message_per_order_outcome(data_dir: Path) -> None:
    sent = {n.order_id: n for n in NotificationStore.in_folder(data_dir).notifications()}
    assert {order_id: (n.kind, n.message) for order_id, n in sent.items()} == {
        "A1": (
            NotificationKind.CONFIRMED,
            "Your order A1 is confirmed (confirmation conf-A1): 45.00 USD. "
            "We will let you know when it ships.",
        ),
        "A2": (
            NotificationKind.CANCELLED,
            "Your order A2 was cancelled: the card was declined; you have not been charged.",
        ),
        "A3": (
            NotificationKind.CANCELLED,
            "Your order A3 was cancelled: an item is out of stock; you have not been charged.",
        ),
        "A4": (
            NotificationKind.CANCELLED,
            "Your order A4 was cancelled: we cannot deliver to the address given; "
            "the 20.00 EUR you paid has been refunded.",
        ),
        "A7": (
            NotificationKind.CONFIRMED,
            "Your order A7 is confirmed (confirmation conf-A7): 10.00 USD. "
            "We will let you know when it ships.",
        ),
        "A8": (
            NotificationKind.CANCELLED,
            "Your order A8 was cancelled: you asked us to; you have not been charged.",
        ),
    }
    a4 = sent["A4"]
    assert (a4.event_id, a4.customer_id, a4.created_at) == (
        "order-A4:7",
        "cust-42",
        "2026-11-26T12:00:38+00:00",
    )
    # A test can read the table directly, too.
    with sqlite3.connect(data_dir / "notifications.db") as conn:
        assert conn.execute("SELECT count(*) FROM notifications").fetchone() == (6,)


@pytest.mark.parametrize(
    ("saga", "why"),
    [
        (Saga("C1").started(1200).interrupted(1, "OrderWithdrawn"), "you asked us to"),
        (Saga("C1").started(1200).interrupted(1, "Cancelled"), "we had to cancel it"),
        (
            Saga("C1").started(1200).failed(1, "reserve_inventory", "DeadlineExceeded"),
            "we could not complete it in time",
        ),
        (
            Saga("C1").started(1200).failed(1, "confirm_order", "ServiceUnavailable"),
            "we could not confirm it",
        ),
    ],
)
def test_cancellation_messages_say_why(tmp_path: Path, saga: Saga, why: str) -> None:
    store = NotificationStore(tmp_path / "n.db")
    saga.compensated(2, "Aborted")
    for event in saga.events:
        store.apply(event)
    [sent] = store.notifications()
    assert sent.message == f"Your order C1 was cancelled: {why}; you have not been charged."


@pytest.mark.parametrize("width", [80, 140])
def test_the_dashboard_shows_the_figures_whole_down_to_80_columns(
    data_dir: Path, width: int
) -> None:
    store = MonitoringStore.in_folder(data_dir)
    console = Console(file=io.StringIO(), width=width)
    console.print(dashboard.render(figures(store, NOW, timedelta(hours=1)), store.active_at(NOW)))
    screen = console.file.getvalue()  # type: ignore[attr-defined]
    for shown in [
        "Success rate",
        "33.3%",
        "Avg duration",
        "5.50 s",
        "P95 latency",
        "10.00 s",
        "Error rate",
        "50.0%",
        "Compensation rate",
        "Active sagas",
        "Waiting for an operator",
        "Orders/min",
        "0.13",
        "55.00 USD/h",
        "8 started, 6 ended: 2 confirmed, 2 aborted, 1 failed, 1 withdrawn, 0 cancelled",
        "(3 compensated)",
        "Active sagas (2)",
        "A5",
        "CompensationNeedsAttention",
        "A6",
        "8.99 USD",
        "9m 20s",  # A5 has been running since 40 s after T0
    ]:
        assert shown in screen, shown
    assert "…" not in screen
    assert max(len(line) for line in screen.splitlines()) <= width


def test_the_commands_run_the_consumers_and_print_a_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The commands would route the root logger to the terminal, for the whole test session.
    monkeypatch.setattr("ordersaga.consumers.runner.configure_logging", lambda *a, **k: None)
    monkeypatch.delenv("EVENT_BUS", raising=False)
    monkeypatch.setenv("COLUMNS", "140")
    bus = open_event_bus(f"sqlite:///{(tmp_path / 'events.db').resolve()}")
    running = Saga("D1", start=datetime.now(UTC) - timedelta(seconds=30)).started(4500)
    asyncio.run(bus.publish(running.events))
    asyncio.run(bus.close())
    cli.run(["consumers", "--data-dir", str(tmp_path), "--once"])
    cli.run(["dashboard", "--data-dir", str(tmp_path), "--once"])
    screen = capsys.readouterr().out
    assert "Active sagas (1)" in screen
    assert "D1" in screen
    assert "45.00 USD" in screen


def test_every_step_has_the_customers_words_for_its_failure() -> None:
    # The words live with the messages; a step added to the table needs its line there.
    assert set(REASONS_BY_STEP) == {row.name for row in ORDER_STEPS}
    assert all(REASONS_BY_STEP.values())


def test_every_refusal_a_customer_can_meet_has_the_customers_words() -> None:
    # As for steps: a refusal added to a port needs its line with the messages.
    assert set(REFUSALS) - set(REASONS) == {ALREADY_COMPENSATED.code}
    assert all(REASONS.values())
