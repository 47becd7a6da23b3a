"""Data shared by the workflow, the activities and the starter.

Everything here is pure: no I/O, no clocks, no randomness, so the workflow sandbox can pass this
module through and the same validation runs in the starter and inside the workflow.

Money is always an integer number of minor units (cents) plus an ISO 4217 currency code.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
    field_validator,
)
from pydantic_extra_types.payment import PaymentCardNumber

#: Currencies the shop accepts. A real shop would list the ones its payment provider settles in.
SUPPORTED_CURRENCIES = frozenset(
    {"AUD", "BRL", "CAD", "CHF", "CNY", "DKK", "EUR", "GBP", "INR", "JPY", "MXN", "NOK", "NZD"}
    | {"PLN", "SEK", "SGD", "USD", "ZAR"}
)

#: Upper bounds that keep a typo (or an attack) from becoming a real order.
MAX_ITEMS_PER_ORDER = 50
MAX_QUANTITY_PER_ITEM = 1_000
MAX_UNIT_PRICE = 10_000_000  # minor units: 100,000.00 in a two-decimal currency

Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class _Model(BaseModel):
    # hide_input_in_errors keeps card tokens and addresses out of error text (and so out of
    # workflow history and logs) when validation fails.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class OrderItem(_Model):
    """One line of an order."""

    sku: Identifier
    quantity: int = Field(ge=1, le=MAX_QUANTITY_PER_ITEM)
    unit_price: int = Field(ge=1, le=MAX_UNIT_PRICE, description="Price of one unit, minor units.")


class Address(_Model):
    """Where the order is shipped."""

    name: ShortText
    line1: ShortText
    line2: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""
    city: ShortText
    postal_code: Annotated[
        str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9 -]{2,12}$")
    ]
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = Field(
        description="ISO 3166-1 alpha-2 country code."
    )


class PaymentMethod(_Model):
    """A card as the saga knows it: a token from the Payment service, never the card number."""

    token: Annotated[str, StringConstraints(pattern=r"^tok_[A-Za-z0-9_]{1,64}$")]
    last4: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]


class CardDetails(_Model):
    """A card as the customer typed it. Only the starter and the Payment service see it."""

    card_number: PaymentCardNumber
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)


class _Order(_Model):
    order_id: Identifier
    customer_id: Identifier
    items: list[OrderItem] = Field(min_length=1, max_length=MAX_ITEMS_PER_ORDER)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    shipping_address: Address

    @field_validator("currency")
    @classmethod
    def _supported_currency(cls, currency: str) -> str:
        if currency not in SUPPORTED_CURRENCIES:
            raise ValueError(f"currency {currency} is not supported")
        return currency

    @field_validator("items")
    @classmethod
    def _unique_skus(cls, items: list[OrderItem]) -> list[OrderItem]:
        skus = [item.sku for item in items]
        duplicates = sorted({sku for sku in skus if skus.count(sku) > 1})
        if duplicates:
            raise ValueError(f"SKU {', '.join(duplicates)} is listed more than once")
        return items

    @property
    def total(self) -> int:
        """The order total in minor units of `currency`."""
        return sum(item.quantity * item.unit_price for item in self.items)


class OrderRequest(_Order):
    """An order as placed by a customer: the input of the `OrderSaga` workflow."""

    payment: PaymentMethod


def _payment_kind(value: Any) -> str:
    fields = value if isinstance(value, dict) else vars(value)
    return "card" if "card_number" in fields else "token"


class OrderForm(_Order):
    """An order as submitted to the starter: paid by card details or by an existing token."""

    payment: Annotated[
        Annotated[CardDetails, Tag("card")] | Annotated[PaymentMethod, Tag("token")],
        Discriminator(_payment_kind),
    ]

    def with_payment(self, payment: PaymentMethod) -> OrderRequest:
        """The saga's input: this order, paid with `payment` (a token, never the card)."""
        return OrderRequest(**self.model_dump(exclude={"payment"}), payment=payment)


def describe_errors(error: ValidationError) -> list[str]:
    """One line per problem, each naming the field: `items.0.quantity: must be ≥ 1`."""
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"] if part not in ("card", "token"))
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{field or 'order'}: {message}")
    return lines


def workflow_id_for(order_id: str) -> str:
    """The workflow id of an order's saga: one saga per order id, ever."""
    return f"order-{order_id}"


class SagaState(StrEnum):
    """Where a saga stands. Forward states in order, then the two ways a saga can end badly."""

    STARTED = "Started"
    INVENTORY_RESERVED = "InventoryReserved"
    PAYMENT_CHARGED = "PaymentCharged"
    SHIPPING_SCHEDULED = "ShippingScheduled"
    ORDER_CONFIRMED = "OrderConfirmed"
    FAILED = "Failed"
    COMPENSATING = "Compensating"
    ABORTED = "Aborted"


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


# --- Activity inputs and results -------------------------------------------------------------
# Every mutating call carries an idempotency key made from the workflow id and the step, never
# the attempt, so a retried or re-run activity has exactly one effect.


def idempotency_key(workflow_id: str, step: Step) -> str:
    """The key under which a step's effect is recorded by its service."""
    return f"{workflow_id}:{step.value}"


class ReserveInventoryInput(_Model):
    """Reserve the items of an order."""

    idempotency_key: str
    order_id: str
    items: list[OrderItem]


class ChargePaymentInput(_Model):
    """Charge the order total to the customer's card token."""

    idempotency_key: str
    order_id: str
    customer_id: str
    amount: int
    currency: str
    payment: PaymentMethod


class ScheduleShipmentInput(_Model):
    """Schedule delivery of the order's items to an address."""

    idempotency_key: str
    order_id: str
    items: list[OrderItem]
    address: Address


class ConfirmOrderInput(_Model):
    """Record the order as confirmed with the Order service."""

    idempotency_key: str
    order_id: str
    customer_id: str
    amount: int
    currency: str
    reservation_id: str
    charge_id: str
    shipment_id: str


class CompensationInput(_Model):
    """Undo the effect that a step recorded under `effect_key`; a no-op if there is none."""

    order_id: str
    effect_key: str


class StepResult(_Model):
    """What a forward step created at its service (a reservation, charge, shipment or order)."""

    id: str


# --- What the saga reports -------------------------------------------------------------------


class SagaStatus(BaseModel):
    """The answer of the `status` query: where the saga stands and what it has done."""

    order_id: str
    state: SagaState
    steps_done: list[Step] = []
    compensations_recorded: list[Compensation] = []
    compensations_run: list[Compensation] = []
    failed_step: Step | None = None
    failure_type: str | None = None
    failure_reason: str | None = None
    reservation_id: str | None = None
    charge_id: str | None = None
    shipment_id: str | None = None


class OrderResult(_Model):
    """What a confirmed order's saga returns."""

    order_id: str
    state: SagaState
    total: int
    currency: str
    reservation_id: str
    charge_id: str
    shipment_id: str
    confirmation_id: str
