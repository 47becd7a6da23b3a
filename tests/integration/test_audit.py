"""The audit finds nothing after a clean run, and each kind of violation once planted.

One small clean run (every saga outcome) on a stack of the module's own; each test plants one
violation in a copy of the services' databases and audits the copy against the same sagas.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus

from domain.ids import idempotency_key, workflow_id_for
from infra.settings import event_log_url
from ops.audit import PAST_RETENTION, AuditReport, audit, check, end_margin_for
from ops.audit_data import Saga, read_sagas, read_service_records
from ops.load import run_load
from ops.rig import WorkerPool, embedded_rig
from ops.workload import Kind, make_order, saga_place
from tests.support.orders import FAST_POLICY
from tests.support.services_fixture import retentions
from workflows.order_steps import ORDER_STEPS, SERVICES

DATABASES = SERVICES


@dataclass(frozen=True)
class CleanRun:
    services_dir: Path
    sagas: dict[str, Saga]
    order_of: dict[Kind, str]
    report: AuditReport


@pytest.fixture(scope="module")
async def clean_run(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CleanRun]:
    async with embedded_rig(tmp_path_factory.mktemp("audit")) as rig:
        assert rig.services_dir is not None
        orders = [make_order(f"audit-{kind}", kind, FAST_POLICY) for kind in Kind]
        # Its workers publish to the rig's event log, which its services follow.
        bus = {"EVENT_BUS": event_log_url(rig.log_dir)}
        async with WorkerPool(rig, "audit", env=bus).running(1):
            await run_load(saga_place(rig.client, "audit", orders), len(orders), concurrency=4)
        yield CleanRun(
            services_dir=rig.services_dir,
            sagas=await read_sagas(rig.client),
            order_of={kind: order.order_id for kind, order in zip(Kind, orders, strict=True)},
            report=await audit(rig.client, rig.services_dir),
        )


def copy_databases(run: CleanRun, folder: Path) -> None:
    for name in DATABASES:
        with (
            closing(sqlite3.connect(run.services_dir / f"{name}.db")) as source,
            closing(sqlite3.connect(folder / f"{name}.db")) as copy,
        ):
            source.backup(copy)


def planted(run: CleanRun, tmp_path: Path, plant: Callable[[Path], None]) -> AuditReport:
    """Audit a copy of the run's databases into which `plant` wrote a violation."""
    copy_databases(run, tmp_path)
    plant(tmp_path)
    return check(read_service_records(tmp_path), run.sagas)


def execute(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        for sql, params in statements:
            db.execute(sql, params)


def noted_end(path: Path, order_id: str) -> bool:
    with closing(sqlite3.connect(path)) as db:
        query = "SELECT 1 FROM ended_orders WHERE order_id = ?"
        return db.execute(query, (order_id,)).fetchone() is not None


def kinds_for(report: AuditReport, order_id: str | None) -> set[str]:
    return {v.kind for v in report.violations if v.order_id == order_id}


async def test_a_clean_run_has_no_violation(clean_run: CleanRun) -> None:
    assert clean_run.report.violations == []
    assert clean_run.report.outcomes == {"OrderConfirmed": 1, "Failed": 1, "Aborted": 2}
    assert clean_run.report.skus_checked >= 3
    assert clean_run.report.skus_unchecked == []


async def test_a_double_charge_is_found(clean_run: CleanRun, tmp_path: Path) -> None:
    order_id = clean_run.order_of[Kind.HAPPY]

    def plant(folder: Path) -> None:
        execute(
            folder / "payment.db",
            (
                "INSERT INTO charges (charge_id, effect_key, order_id, customer_id, amount,"
                " currency, token, status) SELECT 'ch_twice', 'again', order_id, customer_id,"
                " amount, currency, token, status FROM charges WHERE order_id = ?",
                (order_id,),
            ),
        )

    report = planted(clean_run, tmp_path, plant)
    assert {"double-charge", "charge"} <= kinds_for(report, order_id)
    assert kinds_for(report, None) == {"money-conservation"}


async def test_a_leaked_reservation_is_found(clean_run: CleanRun, tmp_path: Path) -> None:
    order_id = clean_run.order_of[Kind.DECLINED]

    def plant(folder: Path) -> None:
        # The release "never happened": the reservation holds its stock again.
        execute(
            folder / "inventory.db",
            ("UPDATE reservations SET status = 'reserved' WHERE order_id = ?", (order_id,)),
            (
                "UPDATE stock SET available = available - (SELECT SUM(i.quantity)"
                " FROM reservation_items AS i JOIN reservations USING (reservation_id)"
                " WHERE order_id = ?1 AND i.sku = stock.sku) WHERE sku IN (SELECT sku"
                " FROM reservation_items JOIN reservations USING (reservation_id)"
                " WHERE order_id = ?1)",
                (order_id,),
            ),
        )

    report = planted(clean_run, tmp_path, plant)
    assert kinds_for(report, order_id) == {"leaked-reservation"}
    assert kinds_for(report, None) == set()  # the stock it holds is accounted for


async def test_stock_that_vanished_breaks_conservation(clean_run: CleanRun, tmp_path: Path) -> None:
    def plant(folder: Path) -> None:
        execute(
            folder / "inventory.db",
            ("UPDATE stock SET available = available - 1 WHERE available > 0", ()),
        )

    report = planted(clean_run, tmp_path, plant)
    assert {v.kind for v in report.violations} == {"stock-conservation"}


async def test_a_live_shipment_on_an_aborted_order_is_found(
    clean_run: CleanRun, tmp_path: Path
) -> None:
    order_id = clean_run.order_of[Kind.DECLINED]

    def plant(folder: Path) -> None:
        execute(
            folder / "shipping.db",
            (
                "INSERT INTO shipments (shipment_id, effect_key, order_id, status, items, address)"
                " VALUES ('shp_planted', 'planted', ?, 'scheduled', '[]', '{}')",
                (order_id,),
            ),
        )

    report = planted(clean_run, tmp_path, plant)
    assert kinds_for(report, order_id) == {"live-shipment"}


async def test_a_missing_refund_is_found(clean_run: CleanRun, tmp_path: Path) -> None:
    order_id = clean_run.order_of[Kind.UNSERVED]  # charged, then refunded when Shipping refused

    def plant(folder: Path) -> None:
        execute(
            folder / "payment.db",
            (
                "DELETE FROM refunds WHERE charge_id IN"
                " (SELECT charge_id FROM charges WHERE order_id = ?)",
                (order_id,),
            ),
            ("UPDATE charges SET status = 'charged' WHERE order_id = ?", (order_id,)),
        )

    report = planted(clean_run, tmp_path, plant)
    assert kinds_for(report, order_id) == {"net-charge"}
    assert kinds_for(report, None) == {"money-conservation"}


async def test_a_partial_refund_is_found(clean_run: CleanRun, tmp_path: Path) -> None:
    order_id = clean_run.order_of[Kind.UNSERVED]

    def plant(folder: Path) -> None:
        execute(
            folder / "payment.db",
            (
                "UPDATE refunds SET amount = amount - 1 WHERE charge_id IN"
                " (SELECT charge_id FROM charges WHERE order_id = ?)",
                (order_id,),
            ),
        )

    report = planted(clean_run, tmp_path, plant)
    assert kinds_for(report, order_id) == {"refund-mismatch", "net-charge"}
    assert kinds_for(report, None) == {"money-conservation"}


async def test_a_record_naming_effects_the_saga_did_not_create_is_found(
    clean_run: CleanRun, tmp_path: Path
) -> None:
    order_id = clean_run.order_of[Kind.HAPPY]

    def plant(folder: Path) -> None:
        # Shipping and the record agree with each other, not with what the saga created.
        execute(
            folder / "shipping.db",
            ("UPDATE shipments SET shipment_id = 'shp_planted' WHERE order_id = ?", (order_id,)),
        )
        execute(
            folder / "orders.db",
            ("UPDATE orders SET shipment_id = 'shp_planted' WHERE order_id = ?", (order_id,)),
        )

    report = planted(clean_run, tmp_path, plant)
    assert kinds_for(report, order_id) == {"saga-result"}
    [violation] = report.violations
    assert "'shipment_id': 'shp_planted'" in violation.detail


async def test_a_saga_still_running_is_a_violation_unless_allowed(clean_run: CleanRun) -> None:
    records = read_service_records(clean_run.services_dir)
    order_id = clean_run.order_of[Kind.HAPPY]
    sagas = dict(clean_run.sagas)
    sagas[order_id] = Saga(order_id, WorkflowExecutionStatus.RUNNING, "ShippingScheduled")
    assert kinds_for(check(records, sagas), order_id) == {"saga-running"}
    assert check(records, sagas, allow_running=True).violations == []


async def test_an_undone_step_of_a_confirmed_order_is_found_whatever_its_service(
    clean_run: CleanRun, tmp_path: Path
) -> None:
    # Read from the effects every service records (a tombstone: its undo ran), not from the
    # service's own tables, so any step of the table is checked the same way.
    order_id = clean_run.order_of[Kind.HAPPY]
    step = ORDER_STEPS[-1]
    key = idempotency_key(workflow_id_for(order_id), step.name)

    def plant(folder: Path) -> None:
        sql = "INSERT INTO tombstones (effect_key) VALUES (?)"
        execute(folder / f"{step.port.name}.db", (sql, (key,)))

    report = planted(clean_run, tmp_path, plant)
    assert [v.detail for v in report.violations if v.kind == "effect-missing"] == [
        f"{step.name} has no effect in force"
    ]


async def test_an_order_whose_saga_passed_its_retention_is_counted_not_judged(
    clean_run: CleanRun,
) -> None:
    # The server deletes a saga a retention after it ended: its confirmed order keeps its
    # charge and shipment, and the saga's total is no longer there to match them.
    records = read_service_records(clean_run.services_dir)
    order_id = clean_run.order_of[Kind.HAPPY]
    sagas = {other: saga for other, saga in clean_run.sagas.items() if other != order_id}
    last = records.last_recorded[order_id]

    past = check(records, sagas, kept_since=last + timedelta(seconds=1))
    assert past.violations == []
    assert past.outcomes[PAST_RETENTION] >= 1 and "no saga" not in past.outcomes

    # Recorded after the horizon: its saga cannot have been deleted yet, so it is judged.
    within = check(records, sagas, kept_since=last - timedelta(seconds=1))
    assert {"effect-kept", "money-conservation"} <= {v.kind for v in within.violations}
    assert within.outcomes["no saga"] == 1


async def test_an_order_its_services_forgot_is_judged_until_its_saga_passed_the_retention(
    clean_run: CleanRun, tmp_path: Path
) -> None:
    # Each service forgets a confirmed order a retention after its saga's last event, which
    # the run's services noted from its event log; the server keeps the saga until a retention
    # after it closed, a moment later.
    order_id = clean_run.order_of[Kind.HAPPY]
    saga = clean_run.sagas[order_id]
    ended = saga.closed_at
    assert ended is not None and saga.request is not None
    deadline = time.monotonic() + 30
    while not all(noted_end(clean_run.services_dir / f"{name}.db", order_id) for name in DATABASES):
        assert time.monotonic() < deadline, "the services did not note the saga's end"
        await asyncio.sleep(0.1)
    copy_databases(clean_run, tmp_path)
    for retention in retentions(tmp_path):
        assert await retention.forget_ended_before(ended + timedelta(seconds=1)) >= 1
    records = read_service_records(tmp_path)
    assert order_id not in records.order_ids()
    assert records.fulfilled == {item.sku: item.quantity for item in saga.request.items}

    # Stock is still conserved: the forgotten reservation's units are booked as fulfilled.
    past = check(records, clean_run.sagas, kept_since=ended + timedelta(seconds=1))
    assert past.violations == []
    assert past.outcomes[PAST_RETENTION] >= 1 and "OrderConfirmed" not in past.outcomes

    within = check(records, clean_run.sagas, kept_since=ended - timedelta(seconds=1))
    expected = {"effect-missing", "reservation", "charge", "shipment", "record"}
    assert expected <= kinds_for(within, order_id)
    # Inside the margin the services may have started first: not judged.
    margin = end_margin_for(timedelta(hours=1))
    edge = check(
        records, clean_run.sagas, kept_since=ended - timedelta(seconds=1), end_margin=margin
    )
    assert edge.violations == []
