"""The order saga's steps, in order: one row each, the single place a step is declared.

The workflow runs the rows top to bottom and undoes them bottom to top; everything else that
knows of steps (the worker's activities, the states a saga goes through, the events it makes,
what monitoring and the customer are told) is derived from this table. Adding a step is adding
a row here, its activity (`activities/`), its port (`ports/`) and its stand-in (`services/`).

The table is checked when this module is imported, so a row lacking a part fails at worker
start with a `StepTableError` naming the step and the part, never as a stuck saga.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from temporalio import activity

from activities.http import ServiceClient
from activities.inventory import InventoryActivities
from activities.orders import OrderActivities
from activities.payment import PaymentActivities
from activities.shipping import ShippingActivities
from ordersaga.events import SagaEventType
from ordersaga.models import ActivityInput, CompensationInput, OrderRequest, SagaState, StepResult
from ports import SERVICES
from ports.inventory import ReserveInventoryInput
from ports.orders import ConfirmOrderInput
from ports.payment import ChargePaymentInput
from ports.shipping import ScheduleShipmentInput

Input = TypeVar("Input", bound=ActivityInput)


class ActivityProvider(Protocol):
    """A class of activities for one port, made with a client of its service."""

    service: ClassVar[str]

    def __init__(self, client: ServiceClient) -> None: ...


class StepTableError(Exception):
    """A row of the step table lacks a part or clashes with another row."""


@dataclass(frozen=True)
class OrderStep(Generic[Input]):
    """One step of the order saga.

    Attributes:
        activity: Does the step: an activity method (`@activity.defn`) of a class whose
            `service` names its port; its name is the step's name.
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

    @property
    def provider(self) -> type[ActivityProvider]:
        """The class whose instance, made with its service's client, runs both activities."""
        return cast(type[ActivityProvider], _owner(self.activity))


ORDER_STEPS: tuple[OrderStep[Any], ...] = (
    OrderStep(
        activity=InventoryActivities.reserve_inventory,
        compensation=InventoryActivities.release_inventory,
        build_input=lambda order, ids, key: ReserveInventoryInput(
            idempotency_key=key, order_id=order.order_id, items=order.items
        ),
        state_after="InventoryReserved",
        event="InventoryReserved",
        yields="reservation_id",
        undone_event="InventoryReleased",
    ),
    OrderStep(
        activity=PaymentActivities.charge_payment,
        compensation=PaymentActivities.refund_payment,
        build_input=lambda order, ids, key: ChargePaymentInput(
            idempotency_key=key,
            order_id=order.order_id,
            customer_id=order.customer_id,
            amount=order.total,
            currency=order.currency,
            payment=order.payment,
        ),
        state_after="PaymentCharged",
        event="PaymentCharged",
        yields="charge_id",
        undone_event="PaymentRefunded",
        charges_customer=True,
    ),
    OrderStep(
        activity=ShippingActivities.schedule_shipment,
        compensation=ShippingActivities.cancel_shipment,
        build_input=lambda order, ids, key: ScheduleShipmentInput(
            idempotency_key=key,
            order_id=order.order_id,
            items=order.items,
            address=order.shipping_address,
        ),
        state_after="ShippingScheduled",
        event="ShippingScheduled",
        yields="shipment_id",
        undone_event="ShipmentCancelled",
    ),
    OrderStep(
        activity=OrderActivities.confirm_order,
        compensation=OrderActivities.cancel_order,
        build_input=lambda order, ids, key: ConfirmOrderInput(
            idempotency_key=key,
            order_id=order.order_id,
            customer_id=order.customer_id,
            amount=order.total,
            currency=order.currency,
            reservation_id=ids["reservation_id"],
            charge_id=ids["charge_id"],
            shipment_id=ids["shipment_id"],
        ),
        state_after="OrderConfirmed",
        event="OrderConfirmed",
        yields="confirmation_id",
        undone_event="OrderCancelled",
    ),
)


def _owner(method: Callable[..., Any]) -> type:
    owner_name, _, _ = method.__qualname__.partition(".")
    owner = getattr(sys.modules[method.__module__], owner_name, None)
    if not isinstance(owner, type) or getattr(owner, method.__name__, None) is not method:
        raise StepTableError(f"{method.__qualname__} is not a method of a module-level class")
    return owner


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


def _check_parts(row: OrderStep[Any], step: str) -> None:
    """Each part of `row` is there and of the right kind."""
    for part in ("activity", "compensation"):
        if activity._Definition.from_callable(getattr(row, part)) is None:
            raise StepTableError(f"step {step}: its {part} is not an @activity.defn")
    service = getattr(row.provider, "service", None)
    if service not in SERVICES:
        raise StepTableError(
            f"step {step}: {row.provider.__name__}.service is {service!r}, not a port "
            f"(ports/<name>.py) among {', '.join(SERVICES)}"
        )
    if _owner(row.compensation) is not row.provider:
        raise StepTableError(
            f"step {step}: its compensation is not a {row.provider.__name__} method"
        )


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

#: The steps by name.
STEPS = {row.name: row for row in ORDER_STEPS}

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
#: `workflows.telemetry`).
SEARCHABLE_STATES = tuple(
    state for state in STATES if state not in {row.state_after for row in ORDER_STEPS[:-1]}
)

#: States in which a customer may still withdraw the order: any before the last step is done.
WITHDRAWABLE = frozenset(STATES[: len(ORDER_STEPS)])

#: The event of a confirmed order (it names the total and the last step's id).
CONFIRMED_EVENT = ORDER_STEPS[-1].event

#: The events of steps that take the customer's money (they name the amount).
CHARGED_EVENTS = frozenset(row.event for row in ORDER_STEPS if row.charges_customer)
