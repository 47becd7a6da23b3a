"""What `order-saga audit` reads: the services' databases and the sagas Temporal knows.

The databases are opened read-only, straight from their files (one read transaction each), so
the audit needs no service to be up and cannot change what it checks. The sagas come from
Temporal's visibility store; a saga visibility still lists as running is looked up again by
`describe` (visibility is updated a moment after the workflow closes), and the input and result
of every completed saga are read from its history, since the invariants of a confirmed order are
about exactly its items and total, and the ids of what it created.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    GetWorkflowExecutionHistoryRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.client import WorkflowExecution as WorkflowExecutionInfo
from temporalio.service import RPCError, RPCStatusCode

from domain.ids import WORKFLOW_ID_PREFIX, order_id_of
from domain.order import OrderRequest
from domain.saga import OrderResult
from infra.exits import StartFailure
from workflows.order_steps import ORDER_STEPS
from workflows.search_attributes import ORDER_STATUS

#: The visibility query of every saga in a namespace.
SAGA_QUERY = "WorkflowType = 'OrderSaga'"

#: Sagas read from Temporal at once.
_CONCURRENT_READS = 32


@dataclass(frozen=True)
class Reservation:
    """A reservation of stock, as the Inventory database holds it."""

    reservation_id: str
    status: str
    items: Counter[str]

    @property
    def live(self) -> bool:
        """Still holding stock."""
        return self.status == "reserved"


@dataclass(frozen=True)
class Charge:
    """A charge and what was refunded of it, as the Payment database holds them."""

    charge_id: str
    amount: int
    currency: str
    status: str
    refunded: int | None

    @property
    def net(self) -> int:
        """Charged minus refunded, in minor units."""
        return self.amount - (self.refunded or 0)


@dataclass(frozen=True)
class Shipment:
    """A shipment, as the Shipping database holds it."""

    shipment_id: str
    status: str
    items: Counter[str]

    @property
    def live(self) -> bool:
        """Not cancelled."""
        return self.status == "scheduled"


#: The ids a confirmed order record names, as the saga's result names them too.
RECORD_IDS = ("reservation_id", "charge_id", "shipment_id")


@dataclass(frozen=True)
class OrderRecord:
    """An order record, as the Order database holds it."""

    status: str
    amount: int
    reservation_id: str
    charge_id: str
    shipment_id: str


@dataclass(frozen=True)
class StepEffect:
    """What the service of one step of one order recorded of it, read from its effects tables.

    Every service keeps the answer of each forward call by its idempotency key and a tombstone
    for each effect it was asked to undo (`services/effects.py`), whatever the step is, so a
    step added to the saga is audited with no code of its own here.

    Attributes:
        taken: The forward call succeeded: the effect exists.
        undone: Its compensation ran.
    """

    taken: bool
    undone: bool


@dataclass
class ServiceRecords:
    """Everything the services hold, grouped by order id.

    Attributes:
        effects: Per order, the effect of each step (by step name) whose service has a record
            of it.
        reservations: Reservations per order.
        charges: Charges per order, each with its refund.
        shipments: Shipments per order.
        records: Order records per order.
        stock: Units available per SKU now.
        starting_stock: Per SKU, the seed plus every admin adjustment (the `stock_adjustments`
            ledger): what stock plus live reservations plus fulfilled units must add up to.
        fulfilled: Per SKU, the units of confirmed orders the services have forgotten (at the
            end of their retention): they left with their shipments.
        last_recorded: Per order, when a service last recorded one of its steps' calls or
            undos: its saga ended after that.
    """

    effects: dict[str, dict[str, StepEffect]] = field(default_factory=dict)
    reservations: dict[str, list[Reservation]] = field(default_factory=dict)
    charges: dict[str, list[Charge]] = field(default_factory=dict)
    shipments: dict[str, list[Shipment]] = field(default_factory=dict)
    records: dict[str, list[OrderRecord]] = field(default_factory=dict)
    stock: dict[str, int] = field(default_factory=dict)
    starting_stock: dict[str, int] = field(default_factory=dict)
    fulfilled: dict[str, int] = field(default_factory=dict)
    last_recorded: dict[str, datetime] = field(default_factory=dict)

    def order_ids(self) -> set[str]:
        """Every order any service has a record of."""
        return {
            *self.effects,
            *self.reservations,
            *self.charges,
            *self.shipments,
            *self.records,
        }


@dataclass(frozen=True)
class Saga:
    """One saga as Temporal reports it.

    Attributes:
        order_id: The order.
        status: The workflow's execution status.
        state: Its `OrderStatus` search attribute (a `SagaState` value), if it keeps one.
        request: The saga's input; read for completed sagas only.
        result: What the saga returned; read for completed sagas only.
        closed_at: When it ended; None while running.
    """

    order_id: str
    status: WorkflowExecutionStatus
    state: str | None = None
    request: OrderRequest | None = None
    result: OrderResult | None = None
    closed_at: datetime | None = None


def services_dir(data_dir: Path) -> Path:
    """The folder of the services' databases: `data_dir` itself or its `services` folder.

    `order-saga demo` and the embedded stack keep them in `<data dir>/services`.
    """
    return data_dir if (data_dir / "inventory.db").exists() else data_dir / "services"


def read_service_records(data_dir: Path) -> ServiceRecords:
    """Read the services' databases in `data_dir` (or its `services` folder), read-only.

    Raises:
        MissingDatabase: A database is missing.
    """
    folder = services_dir(data_dir)
    records = ServiceRecords()
    for step in ORDER_STEPS:
        with _read_only(folder / f"{step.port.name}.db") as db:
            _read_effects(db, step.name, records)
    with _read_only(folder / "inventory.db") as db:
        items: dict[str, Counter[str]] = {}
        for row in db.execute("SELECT reservation_id, sku, quantity FROM reservation_items"):
            items.setdefault(row["reservation_id"], Counter())[row["sku"]] += row["quantity"]
        for row in db.execute("SELECT reservation_id, order_id, status FROM reservations"):
            records.reservations.setdefault(row["order_id"], []).append(
                Reservation(row["reservation_id"], row["status"], items.get(row[0], Counter()))
            )
        records.stock = dict(db.execute("SELECT sku, available FROM stock").fetchall())
        if _has_table(db, "stock_adjustments"):
            records.starting_stock = dict(
                db.execute("SELECT sku, SUM(delta) FROM stock_adjustments GROUP BY sku")
            )
        if _has_table(db, "fulfilled"):
            records.fulfilled = dict(db.execute("SELECT sku, units FROM fulfilled"))
    with _read_only(folder / "payment.db") as db:
        for row in db.execute(
            "SELECT c.charge_id, c.order_id, c.amount, c.currency, c.status, r.amount AS refunded"
            " FROM charges AS c LEFT JOIN refunds AS r USING (charge_id)"
        ):
            records.charges.setdefault(row["order_id"], []).append(
                Charge(row[0], row["amount"], row["currency"], row["status"], row["refunded"])
            )
    with _read_only(folder / "shipping.db") as db:
        for row in db.execute("SELECT shipment_id, order_id, status, items FROM shipments"):
            shipped = _line_items(row["items"])
            records.shipments.setdefault(row["order_id"], []).append(
                Shipment(row["shipment_id"], row["status"], shipped)
            )
    with _read_only(folder / "orders.db") as db:
        for row in db.execute(
            "SELECT order_id, status, amount, reservation_id, charge_id, shipment_id FROM orders"
        ):
            records.records.setdefault(row["order_id"], []).append(
                OrderRecord(*(row[key] for key in OrderRecord.__dataclass_fields__))
            )
    return records


def _read_effects(db: sqlite3.Connection, step: str, records: ServiceRecords) -> None:
    """Add the effects of `step` recorded in its service's database `db` to `records`."""
    suffix = f":{step}"
    undone = dict(db.execute("SELECT effect_key, created_at FROM tombstones").fetchall())
    taken = {
        key: (200 <= status < 300, created_at)
        for key, status, created_at in db.execute("SELECT key, status, created_at FROM idempotency")
        if key.startswith(WORKFLOW_ID_PREFIX) and key.endswith(suffix)
    }
    for key in taken.keys() | {key for key in undone if key.endswith(suffix)}:
        order_id = order_id_of(key.removesuffix(suffix))
        was_taken, taken_at = taken.get(key, (False, None))
        effect = StepEffect(taken=was_taken, undone=key in undone)
        records.effects.setdefault(order_id, {})[step] = effect
        for stamp in (taken_at, undone.get(key)):
            if stamp:
                at = datetime.fromisoformat(stamp)
                records.last_recorded[order_id] = max(at, records.last_recorded.get(order_id, at))


async def retention(client: Client) -> timedelta:
    """How long `client`'s namespace keeps an ended saga before the server deletes it."""
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=client.namespace)
    )
    return described.config.workflow_execution_retention_ttl.ToTimedelta()


async def read_sagas(client: Client, query: str = SAGA_QUERY) -> dict[str, Saga]:
    """Every saga `query` lists, by order id, with the input and result of each completed one."""
    listed = [execution async for execution in client.list_workflows(query)]
    limit = asyncio.Semaphore(_CONCURRENT_READS)

    async def read(execution: WorkflowExecutionInfo) -> Saga | None:
        try:
            return await read_one(execution)
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return None  # deleted since the listing, at the end of its retention
            raise

    async def read_one(execution: WorkflowExecutionInfo) -> Saga:
        status = execution.status
        closed_at = execution.close_time
        async with limit:
            if status in (None, WorkflowExecutionStatus.RUNNING):
                handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
                described = await handle.describe()
                status, closed_at = described.status, described.close_time
            request = result = None
            if status is WorkflowExecutionStatus.COMPLETED:
                request = await _saga_input(client, execution.id, execution.run_id)
                handle = client.get_workflow_handle(
                    execution.id, run_id=execution.run_id, result_type=OrderResult
                )
                result = await handle.result()
        return Saga(
            order_id=order_id_of(execution.id),
            status=status or WorkflowExecutionStatus.RUNNING,
            state=execution.typed_search_attributes.get(ORDER_STATUS),
            request=request,
            result=result,
            closed_at=closed_at,
        )

    sagas = await asyncio.gather(*(read(execution) for execution in listed))
    return {saga.order_id: saga for saga in sagas if saga}


class EncryptedPayloadsError(StartFailure):
    """The sagas' inputs are encrypted and this process has no key for them."""


class MissingDatabase(StartFailure):
    """A service's database is not where the audit looked."""


async def _saga_input(client: Client, workflow_id: str, run_id: str) -> OrderRequest:
    # One event, the first: the start event carries the input.
    page = await client.workflow_service.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            maximum_page_size=1,
        )
    )
    started = page.history.events[0].workflow_execution_started_event_attributes
    try:
        [request] = await client.data_converter.decode(started.input.payloads, [OrderRequest])
    except KeyError as err:  # "Unknown payload encoding binary/encrypted": no codec key given
        raise EncryptedPayloadsError(
            "the sagas' payloads are encrypted: give the audit their keys "
            "(CODEC_KEY_FILE or CODEC_KEYS, as the worker has them)"
        ) from err
    assert isinstance(request, OrderRequest)
    return request


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """One read transaction on a database file that this process never writes to."""
    if not path.exists():
        raise MissingDatabase(
            f"no database at {path}: pass --data-dir, the folder the services keep their "
            "databases in (the demo's data folder)"
        )
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        db.execute("BEGIN")  # every query of this database sees the same committed state
        yield db
        db.execute("ROLLBACK")


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return db.execute(query, (name,)).fetchone() is not None


def _line_items(text: str) -> Counter[str]:
    return Counter({item["sku"]: item["quantity"] for item in json.loads(text)})
