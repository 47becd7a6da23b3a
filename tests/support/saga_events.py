"""Hand-made saga event sequences, shaped as the workflow makes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from domain.events import SagaEvent, SagaEventType

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@dataclass
class Saga:
    """The events of one order's saga, numbered as the workflow numbers them."""

    order_id: str
    start: datetime = T0
    events: list[SagaEvent] = field(default_factory=list)

    def add(self, kind: str, at_s: float, **data: str | int | bool) -> Saga:
        """Append an event `at_s` seconds after the saga's start."""
        sequence = len(self.events) + 1
        self.events.append(
            SagaEvent(
                event_id=f"order-{self.order_id}:{sequence}",
                order_id=self.order_id,
                sequence=sequence,
                type=kind,
                occurred_at=self.start + timedelta(seconds=at_s),
                data=data,
            )
        )
        return self

    def started(self, total: int, currency: str = "USD") -> Saga:
        """`OrderSagaStarted` at 0 s."""
        return self.add(
            SagaEventType.ORDER_SAGA_STARTED,
            0,
            customer_id="cust-42",
            total=total,
            currency=currency,
        )

    def failed(self, at_s: float, step: str, reason_type: str) -> Saga:
        """`SagaFailed`."""
        return self.add(
            SagaEventType.SAGA_FAILED,
            at_s,
            step=step,
            reason_type=reason_type,
            reason=f"{reason_type}: refused",
        )

    def interrupted(self, at_s: float, reason_type: str) -> Saga:
        """`SagaInterrupted`: withdrawn (`OrderWithdrawn`) or cancelled (`Cancelled`)."""
        return self.add(
            SagaEventType.SAGA_INTERRUPTED, at_s, reason_type=reason_type, reason="interrupted"
        )

    def compensated(self, at_s: float, state: str, *names: str) -> Saga:
        """`SagaCompensated`."""
        return self.add(
            SagaEventType.SAGA_COMPENSATED, at_s, state=state, compensations=",".join(names)
        )


def confirmed(
    order_id: str, total: int, currency: str, took_s: float, start: datetime = T0
) -> Saga:
    """Every step succeeds; confirmed `took_s` seconds after the start."""
    return (
        Saga(order_id, start)
        .started(total, currency)
        .add("InventoryReserved", took_s / 4, reservation_id=f"res-{order_id}")
        .add(
            "PaymentCharged",
            took_s / 2,
            charge_id=f"ch-{order_id}",
            amount=total,
            currency=currency,
        )
        .add("ShippingScheduled", took_s * 3 / 4, shipment_id=f"sh-{order_id}")
        .add(
            "OrderConfirmed",
            took_s,
            confirmation_id=f"conf-{order_id}",
            total=total,
            currency=currency,
        )
    )


def declined(order_id: str, total: int, took_s: float, start: datetime = T0) -> Saga:
    """Payment declines the card; the reservation is released."""
    return (
        Saga(order_id, start)
        .started(total)
        .add("InventoryReserved", 1, reservation_id=f"res-{order_id}")
        .failed(2, "charge_payment", "PaymentDeclined")
        .add("InventoryReleased", 3, by_hand=False)
        .compensated(took_s, "Aborted", "release_inventory")
    )


def sold_out(order_id: str, total: int, took_s: float, start: datetime = T0) -> Saga:
    """Inventory refuses: nothing to undo."""
    return (
        Saga(order_id, start)
        .started(total)
        .failed(took_s / 2, "reserve_inventory", "OutOfStock")
        .compensated(took_s, "Failed")
    )


def unserved(order_id: str, total: int, currency: str, took_s: float, start: datetime = T0) -> Saga:
    """Shipping refuses the address: the charge is refunded, the reservation released."""
    return (
        Saga(order_id, start)
        .started(total, currency)
        .add("InventoryReserved", 1, reservation_id=f"res-{order_id}")
        .add(
            "PaymentCharged",
            2,
            charge_id=f"ch-{order_id}",
            amount=total,
            currency=currency,
        )
        .failed(3, "schedule_shipment", "ShippingUnavailable")
        .add("PaymentRefunded", 4, by_hand=False)
        .add("InventoryReleased", 5, by_hand=False)
        .compensated(took_s, "Aborted", "refund_payment", "release_inventory")
    )


def withdrawn(order_id: str, total: int, took_s: float, start: datetime = T0) -> Saga:
    """The customer withdraws the order while it is being charged: the reservation is released."""
    return (
        Saga(order_id, start)
        .started(total)
        .add("InventoryReserved", took_s / 3, reservation_id=f"res-{order_id}")
        .interrupted(took_s / 2, "OrderWithdrawn")
        .add("InventoryReleased", took_s * 2 / 3, by_hand=False)
        .compensated(took_s, "Withdrawn", "release_inventory")
    )
