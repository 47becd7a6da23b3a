"""The order saga's steps, in order: one row each, the single place a step is declared.

The workflow runs the rows top to bottom and undoes them bottom to top; everything else that
knows of steps (the worker's activities, the states a saga goes through, the events it makes,
what monitoring and the customer are told) is derived from this table. Adding a step is adding
a row here, its port (`ports/`), its adapter (`activities/`, registered in `worker.py`), its
stand-in (`services/<port name>.py`) and the customer's words for it
(`ordersaga/consumers/messages.py`); the services the saga calls and their refusals follow from
the rows (`SERVICES`, `REFUSALS`).

The table is checked when this module is imported, so a row lacking a part fails at worker
start with a `StepTableError` naming the step and the part, never as a stuck saga.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from temporalio import activity

from domain.events import SagaEventType
from domain.order import OrderRequest
from domain.saga import SagaState
from ports import (
    ALREADY_COMPENSATED,
    INVALID_REQUEST,
    Refusal,
    ServiceContract,
    inventory,
    orders,
    payment,
    shipping,
)
from ports.contract import CompensationInput, StepResult, line_items
from ports.inventory import InventoryPort, ReserveInventoryInput, ReserveRequest
from ports.orders import ConfirmOrderInput, ConfirmRequest, OrdersPort
from ports.payment import ChargePaymentInput, ChargeRequest, PaymentPort
from ports.shipping import ScheduleShipmentInput, ShipmentRequest, ShippingPort

Input = TypeVar("Input", bound=BaseModel)


class StepTableError(Exception):
    """A row of the step table lacks a part or clashes with another row."""


@dataclass(frozen=True)
class OrderStep(Generic[Input]):
    """One step of the order saga.

    Attributes:
        port: The service the step calls.
        activity: Does the step: the port's activity method (`@activity.defn`); its name is
            the step's name.
        compensation: Undoes the step, given the step's idempotency key as `effect_key`.
        build_input: The activity's input, from the order, the ids the steps before it
            yielded (by `yields` key) and the step's idempotency key.
        state_after: The saga's state once the step is done.
        event: The event the step's success makes.
        yields: The key under which the id of what the step created is kept (in the status,
            the result and the event).
        undone_event: The event its compensation makes once done.
        charges_customer: The step takes the customer's money: its event names the amount,
            and the customer is told it was refunded.
    """

    port: ServiceContract
    activity: Callable[[Any, Input], Awaitable[StepResult]]
    compensation: Callable[[Any, CompensationInput], Awaitable[None]]
    build_input: Callable[[OrderRequest, Mapping[str, str], str], Input]
    state_after: str
    event: str
    yields: str
    undone_event: str
    charges_customer: bool = False

    @property
    def name(self) -> str:
        """The step's name: its activity's."""
        return self.activity.__name__

    @property
    def undo(self) -> str:
        """Its compensation's name."""
        return self.compensation.__name__


ORDER_STEPS: tuple[OrderStep[Any], ...] = (
    OrderStep(
        port=inventory.CONTRACT,
        activity=InventoryPort.reserve_inventory,
        compensation=InventoryPort.release_inventory,
        build_input=lambda order, ids, key: ReserveInventoryInput(
            idempotency_key=key,
            request=ReserveRequest(order_id=order.order_id, items=line_items(order.items)),
        ),
        state_after="InventoryReserved",
        event="InventoryReserved",
        yields="reservation_id",
        undone_event="InventoryReleased",
    ),
    OrderStep(
        port=payment.CONTRACT,
        activity=PaymentPort.charge_payment,
        compensation=PaymentPort.refund_payment,
        build_input=lambda order, ids, key: ChargePaymentInput(
            idempotency_key=key,
            request=ChargeRequest(
                order_id=order.order_id,
                customer_id=order.customer_id,
                amount=order.total,
                currency=order.currency,
                token=order.payment.token,
            ),
        ),
        state_after="PaymentCharged",
        event="PaymentCharged",
        yields="charge_id",
        undone_event="PaymentRefunded",
        charges_customer=True,
    ),
    OrderStep(
        port=shipping.CONTRACT,
        activity=ShippingPort.schedule_shipment,
        compensation=ShippingPort.cancel_shipment,
        build_input=lambda order, ids, key: ScheduleShipmentInput(
            idempotency_key=key,
            request=ShipmentRequest(
                order_id=order.order_id,
                items=line_items(order.items),
                address=order.shipping_address,
            ),
        ),
        state_after="ShippingScheduled",
        event="ShippingScheduled",
        yields="shipment_id",
        undone_event="ShipmentCancelled",
    ),
    OrderStep(
        port=orders.CONTRACT,
        activity=OrdersPort.confirm_order,
        compensation=OrdersPort.cancel_order,
        build_input=lambda order, ids, key: ConfirmOrderInput(
            idempotency_key=key,
            request=ConfirmRequest(
                order_id=order.order_id,
                customer_id=order.customer_id,
                amount=order.total,
                currency=order.currency,
                reservation_id=ids["reservation_id"],
                charge_id=ids["charge_id"],
                shipment_id=ids["shipment_id"],
            ),
        ),
        state_after="OrderConfirmed",
        event="OrderConfirmed",
        yields="confirmation_id",
        undone_event="OrderCancelled",
    ),
)


def check_steps(steps: tuple[OrderStep[Any], ...]) -> None:
    """Refuse a table with a row that lacks a part or clashes with another row.

    Raises:
        StepTableError: Naming the step and the part.
    """
    if not steps:
        raise StepTableError("the order saga needs at least one step")
    taken: dict[str, str] = {value: "a saga state" for value in SagaState}
    taken |= {value: "a saga event" for value in SagaEventType}
    for row in steps:
        step = getattr(row.activity, "__name__", repr(row.activity))
        _check_parts(row, step)
        _check_names(row, step, taken)
    _refusals(_contracts(steps))


def _contracts(steps: tuple[OrderStep[Any], ...]) -> dict[str, ServiceContract]:
    """The contract of each service the steps call, by name (a name for one service only).

    Raises:
        StepTableError: Two different contracts share a name.
    """
    contracts: dict[str, ServiceContract] = {}
    for row in steps:
        if contracts.setdefault(row.port.name, row.port) is not row.port:
            raise StepTableError(f"step {row.name}: another port is also named {row.port.name!r}")
    return dict(sorted(contracts.items()))


def _refusals(contracts: Mapping[str, ServiceContract]) -> dict[str, Refusal]:
    """Every refusal the services may answer, by code (a code for one refusal only).

    Raises:
        StepTableError: Two refusals share a code.
    """
    refusals = {refusal.code: refusal for refusal in (INVALID_REQUEST, ALREADY_COMPENSATED)}
    for contract in contracts.values():
        for refusal in contract.refusals:
            if refusals.setdefault(refusal.code, refusal) is not refusal:
                raise StepTableError(
                    f"ports/{contract.name}.py: refusal {refusal.code} is defined twice"
                )
    return refusals


def _check_parts(row: OrderStep[Any], step: str) -> None:
    """Each part of `row` is there and of the right kind."""
    for part in ("activity", "compensation"):
        if activity._Definition.from_callable(getattr(row, part)) is None:
            raise StepTableError(f"step {step}: its {part} is not an @activity.defn")


def _check_names(row: OrderStep[Any], step: str, taken: dict[str, str]) -> None:
    """Each name of `row` is given and not `taken` by another row; then it is taken.

    One name per thing: a state, an event, an id key or an activity named twice would make two
    steps indistinguishable in the status, the events or the worker.
    """
    names = {
        "name": row.name,
        "compensation": row.undo,
        "state_after": row.state_after,
        "yields": row.yields,
        "undone_event": row.undone_event,
    }
    if row.event != row.state_after:
        names["event"] = row.event
    for part, value in names.items():
        if not value:
            raise StepTableError(f"step {step}: {part} is empty")
        if value in taken:
            raise StepTableError(f"step {step}: {part} {value!r} is already {taken[value]}")
        taken[value] = f"the {part} of step {step}"


check_steps(ORDER_STEPS)


def check_registered(activities: Iterable[Callable[..., Any]]) -> None:
    """Refuse a worker whose `activities` leave a step's activity or compensation unserved.

    Raises:
        StepTableError: Naming the step and the activity no adapter provides.
    """
    served = {_activity_name(registered) for registered in activities}
    for row in ORDER_STEPS:
        for name in (row.name, row.undo):
            if name not in served:
                raise StepTableError(
                    f"step {row.name}: no registered activity is named {name}: list the "
                    "adapter of its port in the worker"
                )


def _activity_name(registered: Callable[..., Any]) -> str | None:
    definition = activity._Definition.from_callable(registered)
    return definition.name if definition else None


#: The steps by name.
STEPS = {row.name: row for row in ORDER_STEPS}

#: Their compensations' names, in the steps' order: what an operator may be asked about.
COMPENSATIONS = tuple(row.undo for row in ORDER_STEPS)

#: The contract of each service the saga calls, by name.
CONTRACTS = _contracts(ORDER_STEPS)

#: The names of the services the saga calls: their URL paths, databases, settings keys and
#: stand-in modules.
SERVICES = tuple(CONTRACTS)

#: Every refusal any of them may answer, by code.
REFUSALS = _refusals(CONTRACTS)

#: The state of a confirmed order: the last step's.
CONFIRMED = ORDER_STEPS[-1].state_after

#: Every state a saga can be in: started, after each step, then the ways to end badly.
STATES = (
    SagaState.STARTED.value,
    *(row.state_after for row in ORDER_STEPS),
    *(state.value for state in SagaState if state is not SagaState.STARTED),
)

#: The states sagas can be found by (the `OrderStatus` search attribute): where people filter.
#: Every state but those between the steps, which are in the `status` query only (see
#: `workflows.order_record`).
SEARCHABLE_STATES = tuple(
    state for state in STATES if state not in {row.state_after for row in ORDER_STEPS[:-1]}
)

#: States in which a customer may still withdraw the order: any before the last step is done.
WITHDRAWABLE = frozenset(STATES[: len(ORDER_STEPS)])

#: The event of a confirmed order (it names the total and the last step's id).
CONFIRMED_EVENT = ORDER_STEPS[-1].event

#: The events of steps that take the customer's money (they name the amount).
CHARGED_EVENTS = frozenset(row.event for row in ORDER_STEPS if row.charges_customer)
