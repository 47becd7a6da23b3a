"""`order-saga audit`: check the design's invariants across the services and Temporal.

After every saga has ended, for every order (docs/operations.md lists them too):

- every step of the saga, whatever its service, from the records every service keeps of its
  effects: confirmed ⇒ each step's effect in force; otherwise ⇒ none left in force;
- confirmed (workflow completed) ⇒ exactly its items reserved and not released, exactly its total
  charged and not refunded, one live shipment of its items, one confirmed record that names them
  and names the ids the saga returned;
- failed, aborted, withdrawn or cancelled ⇒ no live reservation, net charge zero, no live
  shipment, no confirmed record;
- no order charged twice; no saga still running (unless allowed); no effect without a saga;
- stock is conserved: per SKU, the starting stock (the seed plus every admin adjustment, which
  the Inventory service keeps in its `stock_adjustments` ledger) equals the units available plus
  the units held by live reservations plus the units fulfilled (confirmed orders forgotten);
  money is conserved: per currency, charges minus refunds equal the totals of the confirmed
  orders, and every refund matches its charge.

Sagas still running are skipped by the per-order checks (their effects are in flux) and by
money conservation, which only adds up orders whose sagas have ended; stock conservation holds
at every moment, as each reservation, release and forgetting is one transaction.

What ended sagas left is deleted a retention after their end, by the server and by each service
on its own time, so an order near that horizon may be half forgotten. It is past retention,
counted but not judged, if its saga ended longer ago than the retention (less
`end_margin_for`), or if it has no saga and its services last recorded it longer ago than
the retention.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus

from infra.temporal import connect
from ops.audit_data import (
    RECORD_IDS,
    Saga,
    ServiceRecords,
    read_sagas,
    read_service_records,
    retention,
)
from ops.options import add_temporal_options
from workflows.order_steps import ORDER_STEPS


@dataclass(frozen=True)
class Violation:
    """One broken invariant.

    Attributes:
        kind: Which invariant (a stable, kebab-case name such as `double-charge`).
        detail: What was found, in plain words.
        order_id: The order concerned; None for a whole-run total (stock, money).
    """

    kind: str
    detail: str
    order_id: str | None = None

    def __str__(self) -> str:
        return f"{self.order_id or '(totals)'}: {self.kind}: {self.detail}"


@dataclass
class AuditReport:
    """What the audit found.

    Attributes:
        outcomes: Number of orders per outcome: a `SagaState` value for sagas that keep one
            (Confirmed, Aborted, Failed, ...), the workflow status otherwise, `no saga` for
            orders only the services know, and `past retention` for those whose saga the
            server may have deleted.
        skus_checked: SKUs whose stock conservation was checked.
        skus_unchecked: SKUs with no starting stock on record (a database older than the ledger).
        violations: Every broken invariant.
    """

    outcomes: Counter[str] = field(default_factory=Counter)
    skus_checked: int = 0
    skus_unchecked: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No violation."""
        return not self.violations

    def summary(self) -> str:
        """A few lines: orders per outcome, what was checked, the violations."""
        outcomes = ", ".join(f"{n} {what}" for what, n in sorted(self.outcomes.items()))
        lines = [
            f"{sum(self.outcomes.values())} orders: {outcomes or 'none'}",
            f"stock conservation checked for {self.skus_checked} SKUs"
            + (f"; no starting stock on record for {', '.join(self.skus_unchecked)}"
               if self.skus_unchecked else ""),
            f"{len(self.violations)} violation(s)",
        ]  # fmt: skip
        return "\n".join(lines + [f"  {violation}" for violation in self.violations])


#: Statuses of a saga that ended without confirming: everything must be undone.
ENDED_UNDONE = frozenset(
    {
        WorkflowExecutionStatus.FAILED,
        WorkflowExecutionStatus.CANCELED,
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.TIMED_OUT,
    }
)


#: The outcome of an order whose saga, or records, may be deleted at the end of its retention.
PAST_RETENTION = "past retention"


def check(
    records: ServiceRecords,
    sagas: Mapping[str, Saga],
    *,
    allow_running: bool = False,
    kept_since: datetime | None = None,
    end_margin: timedelta = timedelta(0),
) -> AuditReport:
    """Check every invariant of the services' `records` against the `sagas` Temporal reports.

    Args:
        records: What the services hold.
        sagas: The sagas Temporal lists, by order id.
        allow_running: A saga still running is no violation.
        kept_since: The server and the services keep what every saga that ended after this
            moment left (their retention); orders they may have forgotten are not judged.
        end_margin: How much earlier than its saga's end the services may start an order's
            retention (`end_margin_for`).
    """
    report = AuditReport()
    money: Counter[str] = Counter()  # per currency: net charged minus confirmed totals
    for order_id in sorted(records.order_ids() | set(sagas)):
        saga = sagas.get(order_id)
        if kept_since and _past_retention(records, order_id, saga, kept_since + end_margin):
            report.outcomes[PAST_RETENTION] += 1
            continue
        report.outcomes[_outcome(saga)] += 1
        found = _check_order(records, order_id, saga, allow_running)
        report.violations += [Violation(kind, detail, order_id) for kind, detail in found]
        if saga is None or saga.status is not WorkflowExecutionStatus.RUNNING:
            for charge in records.charges.get(order_id, []):
                money[charge.currency] += charge.net
            if saga and saga.request and saga.status is WorkflowExecutionStatus.COMPLETED:
                money[saga.request.currency] -= saga.request.total
    for currency, difference in sorted(money.items()):
        if difference:
            report.violations.append(
                Violation(
                    "money-conservation",
                    f"charges minus refunds differ from the confirmed orders' totals by "
                    f"{difference} {currency} (minor units)",
                )
            )
    _check_stock(records, report)
    return report


def _past_retention(
    records: ServiceRecords, order_id: str, saga: Saga | None, ended_kept_since: datetime
) -> bool:
    if saga is None:
        recorded = records.last_recorded.get(order_id)
        return recorded is not None and recorded < ended_kept_since
    return saga.closed_at is not None and saga.closed_at < ended_kept_since


#: The longest a saga's end may follow its last event, from which the services count its
#: retention: the saga publishes that event, then closes.
END_MARGIN = timedelta(minutes=1)


def end_margin_for(retention: timedelta) -> timedelta:
    """How much earlier than the server the services may start an ended saga's retention.

    `END_MARGIN`, or half a shorter retention, so that a short one still leaves sagas judged.
    """
    return min(END_MARGIN, retention / 2)


def _outcome(saga: Saga | None) -> str:
    if saga is None:
        return "no saga"
    return saga.state or saga.status.name.lower()


def _check_order(
    records: ServiceRecords, order_id: str, saga: Saga | None, allow_running: bool
) -> list[tuple[str, str]]:
    """(kind, detail) of each invariant the order breaks."""
    found = _check_charges(records, order_id)
    if saga is None:
        # Effects no saga owns: nothing will ever undo or confirm them.
        return found + [
            (kind, f"{detail}, and no saga") for kind, detail in _live(records, order_id)
        ]
    if saga.status is WorkflowExecutionStatus.RUNNING:
        if not allow_running:
            found.append(("saga-running", f"saga still running (state {saga.state or '?'})"))
        return found
    if saga.status is WorkflowExecutionStatus.COMPLETED:
        return found + _check_confirmed(records, order_id, saga)
    ended = saga.state or saga.status.name.lower()
    return found + [(kind, f"{detail}, saga {ended}") for kind, detail in _live(records, order_id)]


def _check_charges(records: ServiceRecords, order_id: str) -> list[tuple[str, str]]:
    found = []
    charges = records.charges.get(order_id, [])
    if len(charges) > 1:
        found.append(("double-charge", f"charged {len(charges)} times"))
    for charge in charges:
        refunded = charge.refunded is not None
        if refunded != (charge.status == "refunded") or charge.refunded not in (
            None,
            charge.amount,
        ):
            detail = f"charge {charge.charge_id} is {charge.status}, {charge.refunded or 0} of "
            found.append(("refund-mismatch", f"{detail}{charge.amount} refunded"))
    return found


def _live(records: ServiceRecords, order_id: str) -> list[tuple[str, str]]:
    """(kind, detail) of each effect of the order still in force."""
    found = [
        ("effect-kept", f"{step}'s effect is not undone")
        for step, effect in records.effects.get(order_id, {}).items()
        if effect.taken and not effect.undone
    ]
    reserved = [r for r in records.reservations.get(order_id, []) if r.live]
    if reserved:
        found.append(("leaked-reservation", f"{len(reserved)} reservation(s) still hold stock"))
    net = sum(charge.net for charge in records.charges.get(order_id, []))
    if net:
        found.append(("net-charge", f"net charge {net} (a refund is missing)"))
    shipped = [s for s in records.shipments.get(order_id, []) if s.live]
    if shipped:
        found.append(("live-shipment", f"{len(shipped)} shipment(s) still scheduled"))
    if any(record.status == "confirmed" for record in records.records.get(order_id, [])):
        found.append(("confirmed-record", "the order record is confirmed"))
    return found


def _check_confirmed(records: ServiceRecords, order_id: str, saga: Saga) -> list[tuple[str, str]]:
    """A confirmed order holds exactly its items and total, once, and its record names them.

    The record's ids must be those the services hold and those the saga returned: a record that
    names another order's effects, or effects the saga did not create, is found.
    """
    request = saga.request
    assert request is not None  # read for every completed saga
    items = Counter({item.sku: item.quantity for item in request.items})
    effects = records.effects.get(order_id, {})
    # The steps of the build that ran the saga: those whose ids its result names (a saga that
    # started before a step was added ran without it).
    ran = [step.name for step in ORDER_STEPS if saga.result and step.yields in saga.result.ids]
    found = [
        ("effect-missing", f"{step} has no effect in force")
        for step in ran
        if not (step in effects and effects[step].taken and not effects[step].undone)
    ]
    reservations = records.reservations.get(order_id, [])
    if [(r.live, r.items) for r in reservations] != [(True, items)]:
        found.append(("reservation", f"want one live reservation of {dict(items)}, found "
                      f"{[(r.status, dict(r.items)) for r in reservations]}"))  # fmt: skip
    charges = records.charges.get(order_id, [])
    wanted = (request.total, request.currency, "charged", None)
    if [(c.amount, c.currency, c.status, c.refunded) for c in charges] != [wanted]:
        charged = [(c.amount, c.currency, c.status) for c in charges]
        want = f"want one unrefunded charge of {request.total} {request.currency}"
        found.append(("charge", f"{want}, found {charged}"))
    shipments = records.shipments.get(order_id, [])
    live = [s for s in shipments if s.live]
    if [s.items for s in live] != [items]:
        found.append(("shipment", f"want one live shipment of {dict(items)}, found "
                      f"{[(s.status, dict(s.items)) for s in shipments]}"))  # fmt: skip
    confirmed = [r for r in records.records.get(order_id, []) if r.status == "confirmed"]
    if len(confirmed) != 1 or confirmed[0].amount != request.total:
        kept = [(r.status, r.amount) for r in records.records.get(order_id, [])]
        found.append(("record", f"want one confirmed record of {request.total}, found {kept}"))
    else:
        named = {key: getattr(confirmed[0], key) for key in RECORD_IDS}
        if reservations and charges and live:
            held = (reservations[0].reservation_id, charges[0].charge_id, live[0].shipment_id)
            if tuple(named.values()) != held:
                found.append(("record", f"the record names {named}, the services hold {held}"))
        returned = {key: saga.result.ids.get(key) for key in RECORD_IDS} if saga.result else {}
        if named != returned:
            found.append(("saga-result", f"the record names {named}, the saga returned {returned}"))
    return found


def _check_stock(records: ServiceRecords, report: AuditReport) -> None:
    """Per SKU: starting stock = available + held by live reservations + fulfilled."""
    held: Counter[str] = Counter()
    for reservations in records.reservations.values():
        for reservation in reservations:
            if reservation.live:
                held.update(reservation.items)
    for sku in sorted(records.stock.keys() | held.keys()):
        if sku not in records.starting_stock:
            report.skus_unchecked.append(sku)
            continue
        report.skus_checked += 1
        start, now = records.starting_stock[sku], records.stock.get(sku, 0)
        fulfilled = records.fulfilled.get(sku, 0)
        if start != now + held[sku] + fulfilled:
            report.violations.append(
                Violation(
                    "stock-conservation",
                    f"{sku}: started with {start}, {now} available + {held[sku]} reserved + "
                    f"{fulfilled} fulfilled = {now + held[sku] + fulfilled}",
                )
            )


async def audit(client: Client, data_dir: Path, *, allow_running: bool = False) -> AuditReport:
    """Read the services' databases in `data_dir` and every saga of `client`'s namespace; check.

    Temporal is read first: a saga that ends while the databases are read has its effects
    already final or is reported (as running) rather than judged half-way.
    """
    sagas = await read_sagas(client)
    kept_for = await retention(client)
    records = await asyncio.to_thread(read_service_records, data_dir)
    # After the listing and the reading: a saga deleted, or an order a service forgot, before
    # then ended at least a retention before now.
    kept_since = datetime.now(UTC) - kept_for
    return check(
        records,
        sagas,
        allow_running=allow_running,
        kept_since=kept_since,
        end_margin=end_margin_for(kept_for),
    )


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `order-saga audit` and its options."""
    parser = commands.add_parser(
        "audit", help="check that no order lost or kept anything it should not (exit 1 if so)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data"),
        help="the services' databases, or the folder holding them in services/ "
        "[default %(default)s]",
    )
    add_temporal_options(parser)
    parser.add_argument(
        "--allow-running", action="store_true", help="sagas still running are not a violation"
    )


async def run_command(args: argparse.Namespace) -> int:
    """Run `order-saga audit`; the exit code is 1 if there is any violation.

    Raises:
        StartFailure: Temporal, a database or the payload keys are missing.
    """
    client = await connect(args.address, args.namespace)
    report = await audit(client, args.data_dir, allow_running=args.allow_running)
    print(report.summary())
    return 0 if report.ok else 1
