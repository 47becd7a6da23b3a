"""The saga's steps, their compensations, and the refusals that end a step for good."""

from __future__ import annotations

from enum import StrEnum


class Step(StrEnum):
    """A forward step of the saga; the value is its activity name."""

    RESERVE_INVENTORY = "reserve_inventory"
    CHARGE_PAYMENT = "charge_payment"
    SCHEDULE_SHIPMENT = "schedule_shipment"
    CONFIRM_ORDER = "confirm_order"


class Compensation(StrEnum):
    """The undo of a forward step; the value is its activity name."""

    RELEASE_INVENTORY = "release_inventory"
    REFUND_PAYMENT = "refund_payment"
    CANCEL_SHIPMENT = "cancel_shipment"
    CANCEL_ORDER = "cancel_order"


class RefusalType(StrEnum):
    """Stable `ApplicationError.type` values of business refusals: never retried."""

    OUT_OF_STOCK = "OutOfStock"
    UNKNOWN_SKU = "UnknownSku"
    PAYMENT_DECLINED = "PaymentDeclined"
    SHIPPING_UNAVAILABLE = "ShippingUnavailable"
    CONFIRMATION_REJECTED = "ConfirmationRejected"
    INVALID_REQUEST = "InvalidRequest"
    ALREADY_COMPENSATED = "AlreadyCompensated"
