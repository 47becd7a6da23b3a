"""Data shared by the workflow, the activities and the starter.

Everything here is pure: no I/O, no clocks, no randomness, so the workflow sandbox can pass this
module through and the same validation runs in the starter and inside the workflow. (The one
exception: the list of country codes is read from pycountry's data once, at import.)

Money is always an integer number of minor units (cents) plus an ISO 4217 currency code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Annotated, Any

import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_extra_types.payment import PaymentCardNumber

from ordersaga.events import SagaEvent, StepAnnouncement
from ordersaga.money import SUPPORTED_CURRENCIES
from ordersaga.policy import SagaPolicy

#: ISO 3166-1 alpha-2 country codes, from pycountry's list. Read here, once, at import: pycountry
#: loads its data file on first use, and validation also runs inside the workflow sandbox, which
#: forbids opening files (so pydantic-extra-types' CountryAlpha2, which loads lazily, will not do).
COUNTRY_CODES = frozenset(country.alpha_2 for country in pycountry.countries)

#: Upper bounds that keep a typo (or an attack) from becoming a real order.
MAX_ITEMS_PER_ORDER = 50
MAX_QUANTITY_PER_ITEM = 1_000
MAX_UNIT_PRICE = 10_000_000  # minor units: 100,000.00 in a two-decimal currency
MAX_TEXT_LENGTH = 100


def _worded(message: str, /, **by_error_type: str) -> WrapValidator:
    """Say what a field must be in plain words, instead of pydantic's own message.

    `message` replaces any error of the field, or `by_error_type[type]` where one is given (say
    `less_than_equal=...`). The error keeps pydantic's type, so code can still tell errors apart.
    A message never contains the value: card numbers, tokens and addresses stay out of error text.
    """

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as err:
            error_type = err.errors()[0]["type"]
            raise PydanticCustomError(error_type, by_error_type.get(error_type, message)) from None

    return WrapValidator(validate)


def _one_of(codes: frozenset[str]) -> AfterValidator:
    """Accept only one of `codes` (the field words the error)."""

    def validate(code: str) -> str:
        if code not in codes:
            raise ValueError("unknown code")
        return code

    return AfterValidator(validate)


def _whole_number(value: Any) -> Any:
    """Refuse what only looks like a whole number: `15.00`, `1e3`, `true`.

    Pydantic's lax mode would take the float 1000.0 (JSON's `1e3`) or the text "15.00" as an
    int; for money and counts a typed decimal point is a sign of a misunderstanding.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PydanticCustomError("int_type", "not a whole number")
    if isinstance(value, str) and not value.strip().isdecimal():
        raise PydanticCustomError("int_parsing", "not a whole number")
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"),
    _worded("must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"),
]
ShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_LENGTH),
    _worded(
        f"must be text of at most {MAX_TEXT_LENGTH} characters",
        string_too_short="must not be empty",
    ),
]
OptionalText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_TEXT_LENGTH),
    _worded(f"must be text of at most {MAX_TEXT_LENGTH} characters"),
]
Currency = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_upper=True),
    _one_of(SUPPORTED_CURRENCIES),
    _worded(
        "must be the ISO 4217 code of a currency the shop accepts: "
        + ", ".join(sorted(SUPPORTED_CURRENCIES))
    ),
]


class _Model(BaseModel):
    # hide_input_in_errors keeps card tokens and addresses out of error text (and so out of
    # workflow history and logs) when validation fails.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class OrderItem(_Model):
    """One line of an order."""

    sku: Identifier
    quantity: Annotated[
        WholeNumber,
        Field(ge=1, le=MAX_QUANTITY_PER_ITEM),
        _worded(
            f"must be a whole number from 1 to {MAX_QUANTITY_PER_ITEM}",
            greater_than_equal="must be at least 1",
            less_than_equal=f"must be at most {MAX_QUANTITY_PER_ITEM} per item",
        ),
    ]
    unit_price: Annotated[
        WholeNumber,
        Field(ge=1, le=MAX_UNIT_PRICE, description="Price of one unit, minor units."),
        _worded(
            "must be a positive whole number of minor units (cents), such as 1500 for 15.00",
            less_than_equal=f"must be at most {MAX_UNIT_PRICE} minor units (cents)",
        ),
    ]


class Address(_Model):
    """Where the order is shipped."""

    name: ShortText
    line1: ShortText
    line2: OptionalText = ""
    city: ShortText
    postal_code: Annotated[
        str,
        StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9 -]{2,12}$"),
        _worded("must be 2 to 12 letters, digits, spaces or '-'"),
    ]
    country: Annotated[
        str,
        StringConstraints(strip_whitespace=True, to_upper=True),
        _one_of(COUNTRY_CODES),
        Field(description="ISO 3166-1 alpha-2 country code."),
        _worded("must be a two-letter ISO 3166 country code such as US"),
    ]


class PaymentMethod(_Model):
    """A card as the saga knows it: a token from the Payment service, never the card number."""

    token: Annotated[
        str,
        StringConstraints(pattern=r"^tok_[A-Za-z0-9_]{1,64}$"),
        _worded("must be a Payment-service token: 'tok_' then 1 to 64 letters, digits or '_'"),
    ]
    last4: Annotated[
        str,
        StringConstraints(pattern=r"^[0-9]{4}$"),
        _worded("must be the last four digits of the card"),
    ]


def _digits_only(card_number: Any) -> Any:
    # As printed on the card: groups of digits separated by spaces or dashes.
    return re.sub(r"[ -]", "", card_number) if isinstance(card_number, str) else card_number


class CardDetails(_Model):
    """A card as the customer typed it. Only the starter and the Payment service see it."""

    card_number: Annotated[
        PaymentCardNumber,
        BeforeValidator(_digits_only),
        _worded(
            "must be a card number of 12 to 19 digits",
            payment_card_number_luhn="is not a valid card number (wrong check digit: mistyped?)",
            payment_card_number_brand="has the wrong number of digits for its card brand",
        ),
    ]
    exp_month: Annotated[int, Field(ge=1, le=12), _worded("must be a month from 1 to 12")]
    exp_year: Annotated[
        int, Field(ge=2000, le=2100), _worded("must be a four-digit year from 2000 to 2100")
    ]


class _Order(_Model):
    # `policy` is how the saga times out and retries its calls: the default is what the
    # business asked for; a shop's backend may choose another per order.
    order_id: Identifier
    customer_id: Identifier
    items: list[OrderItem] = Field(min_length=1, max_length=MAX_ITEMS_PER_ORDER)
    currency: Currency
    shipping_address: Address
    policy: SagaPolicy = SagaPolicy()

    @field_validator("items", mode="before")
    @classmethod
    def _item_count(cls, items: Any) -> Any:
        # Before the items themselves: an absurdly long list is refused without reading it.
        if isinstance(items, list | tuple):
            if not items:
                raise PydanticCustomError("too_short", "must list at least one item")
            if len(items) > MAX_ITEMS_PER_ORDER:
                raise PydanticCustomError(
                    "too_long", f"must list at most {MAX_ITEMS_PER_ORDER} items"
                )
        return items

    @field_validator("items")
    @classmethod
    def _unique_skus(cls, items: list[OrderItem]) -> list[OrderItem]:
        positions: dict[str, list[str]] = {}
        for index, item in enumerate(items):
            positions.setdefault(item.sku, []).append(f"items.{index}")
        repeats = [where for where in positions.values() if len(where) > 1]
        if repeats:
            # Positions, not SKUs: a message never repeats the input.
            same = "; ".join(f"{', '.join(where[:-1])} and {where[-1]}" for where in repeats)
            raise PydanticCustomError(
                "duplicate_sku",
                f"{same} have the same SKU (list each SKU once, with its total quantity)",
            )
        return items

    @property
    def total(self) -> int:
        """The order total in minor units of `currency`."""
        return sum(item.quantity * item.unit_price for item in self.items)


class OrderRequest(_Order):
    """An order as placed by a customer: the input of the `OrderSaga` workflow."""

    payment: PaymentMethod

    @field_validator("payment", mode="before")
    @classmethod
    def _no_card_numbers(cls, payment: Any) -> Any:
        # Say why, rather than "token: Field required"; and never echo the number.
        if isinstance(payment, CardDetails) or (
            isinstance(payment, dict) and "card_number" in payment
        ):
            raise PydanticCustomError(
                "card_number_not_allowed",
                "must be a Payment-service token, never a card number: exchange the card for a "
                "token first (starter.py place does)",
            )
        return payment


# Tags of OrderForm's payment kinds. They appear in error locations, where describe_errors drops
# them; a '-' keeps them from ever being taken for a field name.
_CARD_TAG = "by-card"
_TOKEN_TAG = "by-token"


def _payment_kind(value: Any) -> str | None:
    if isinstance(value, CardDetails) or (isinstance(value, dict) and "card_number" in value):
        return _CARD_TAG
    if isinstance(value, PaymentMethod) or (isinstance(value, dict) and "token" in value):
        return _TOKEN_TAG
    return None


class OrderForm(_Order):
    """An order as submitted to the starter: paid by card details or by an existing token."""

    payment: Annotated[
        Annotated[CardDetails, Tag(_CARD_TAG)] | Annotated[PaymentMethod, Tag(_TOKEN_TAG)],
        Discriminator(
            _payment_kind,
            custom_error_type="payment_kind",
            custom_error_message="must be a card (card_number, exp_month, exp_year) or a "
            "Payment-service token (token, last4)",
        ),
    ]

    def with_payment(self, payment: PaymentMethod) -> OrderRequest:
        """The saga's input: this order, paid with `payment` (a token, never the card)."""
        return OrderRequest(**self.model_dump(exclude={"payment"}), payment=payment)


#: Plain words for the errors that are not about one field's value (those are worded by the
#: field): a field that is missing or unknown, or a value of the wrong shape.
_GENERAL_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
}


def describe_errors(error: ValidationError) -> list[str]:
    """One line per problem, each naming the field: `items.0.quantity: must be at least 1`.

    The whole order is called `order`: `order: is not valid JSON (EOF while parsing...)`.
    Like the messages it reads, a line never contains the value that was given.
    """
    return describe_problems(error.errors(include_url=False, include_input=False))


def describe_problems(problems: Iterable[Mapping[str, Any]], within: str = "") -> list[str]:
    """`describe_errors` of pydantic's problems (as `ValidationError.errors()` lists them).

    Args:
        problems: The problems; their `input`, if any, is never read.
        within: A leading part of each location that names no field (FastAPI's `body`).
    """
    lines = []
    for problem in problems:
        location = (
            problem["loc"][1:] if within and problem["loc"][:1] == (within,) else problem["loc"]
        )
        field = ".".join(str(part) for part in location if part not in (_CARD_TAG, _TOKEN_TAG))
        if problem["type"] == "json_invalid":  # of the whole document, wherever it broke
            field = ""
            message = f"is not valid JSON ({problem.get('ctx', {}).get('error', 'unreadable')})"
        else:
            message = _GENERAL_MESSAGES.get(problem["type"], problem["msg"])
        if not field and message == "must be an object":
            message = "must be a JSON object"
        lines.append(f"{field or 'order'}: {message.removeprefix('Value error, ')}")
    return lines


#: The workflow id of an order's saga is this prefix and the order id.
WORKFLOW_ID_PREFIX = "order-"


def workflow_id_for(order_id: str) -> str:
    """The workflow id of an order's saga: one saga per order id, ever."""
    return f"{WORKFLOW_ID_PREFIX}{order_id}"


def order_id_of(workflow_id: str) -> str:
    """The order id of the saga `workflow_id`."""
    return workflow_id.removeprefix(WORKFLOW_ID_PREFIX)


class RefusedOrder(BaseModel):
    """A saga's input that is not a valid `OrderRequest`, with one line per problem.

    The saga's input type is `OrderInput`, so a payload that `OrderRequest` refuses (one given
    to `temporal workflow start --input`, say) reaches the saga as a `RefusedOrder`, which it
    refuses in its own words and states, instead of failing before any of its code runs.
    """

    problems: list[str]

    @classmethod
    def arrived_unencrypted(cls, problem: str) -> RefusedOrder:
        """What the saga gets, where encryption is on, for an input that arrived without it."""
        return cls.model_construct(problems=[problem])

    @model_validator(mode="before")
    @classmethod
    def _problems_of(cls, data: Any) -> dict[str, list[str]]:
        try:
            OrderRequest.model_validate(data)
        except ValidationError as err:
            return {"problems": describe_errors(err)}
        return {"problems": []}


#: The input of the `OrderSaga` workflow: an order, or what was given instead of one.
OrderInput = Annotated[OrderRequest | RefusedOrder, Field(union_mode="left_to_right")]


class SagaState(StrEnum):
    """How a saga stands apart from its steps: started, or ending other than confirmed.

    Between `STARTED` and the end, a saga is in the state after its last step done
    (`workflows/order_steps.py` names them: `InventoryReserved`, ...), the last of which is
    the confirmed order. A step's failure ends it `ABORTED` or `FAILED`; a customer's change of
    mind or an operator's cancellation is nobody's failure, and ends it `WITHDRAWN` or
    `CANCELLED`, whatever step was under way.
    """

    STARTED = "Started"
    REFUSED = "Refused"
    """Its input was not an order it may run: nothing was done."""
    FAILED = "Failed"
    """A step failed before any step had taken effect: nothing to undo."""
    COMPENSATING = "Compensating"
    NEEDS_ATTENTION = "NeedsAttention"
    ABORTED = "Aborted"
    """A step failed; every step taken was undone."""
    WITHDRAWN = "Withdrawn"
    """The customer took the order back; every step taken was undone."""
    CANCELLED = "Cancelled"
    """The saga was cancelled (`temporal workflow cancel`); every step taken was undone."""


# --- Activity inputs and results -------------------------------------------------------------
# Every mutating call carries an idempotency key made from the workflow id and the step, never
# the attempt, so a retried or re-run activity has exactly one effect.


def idempotency_key(workflow_id: str, step: str) -> str:
    """The key under which a step's effect is recorded by its service."""
    return f"{workflow_id}:{step}"


class ActivityInput(_Model):
    """What every activity input has: the saga events that go out with it.

    The worker's event interceptor publishes `events` before the activity runs and `announces`
    once it has succeeded (see activities/events.py), so events cost no activity of their own.
    """

    events: list[SagaEvent] = []
    announces: StepAnnouncement | None = None


class CompensationInput(ActivityInput):
    """Undo the effect that a step recorded under `effect_key`; a no-op if there is none."""

    order_id: str
    effect_key: str


class PublishEventsInput(ActivityInput):
    """Publish the saga's last events (its outcome), which no step activity is left to carry."""

    order_id: str


class StepResult(_Model):
    """What a forward step created at its service (a reservation, charge, shipment or order)."""

    id: str


# --- What the saga reports -------------------------------------------------------------------


class Attention(BaseModel):
    """A compensation that kept failing: the saga waits for an operator."""

    compensation: str
    reason: str
    attempts: int


class OperatorAction(StrEnum):
    """What an operator can do about a compensation that needs attention."""

    RETRY = "retry"
    MARK_DONE = "mark_done"


class Resolution(_Model):
    """An operator's decision on the compensation that needs attention."""

    action: OperatorAction
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""

    @model_validator(mode="after")
    def _done_by_hand_needs_a_reason(self) -> Resolution:
        if self.action is OperatorAction.MARK_DONE and not self.reason:
            raise ValueError("say why the compensation can be marked done (reason)")
        return self


class Withdrawal(_Model):
    """A customer taking back an order before it is confirmed."""

    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""


class SagaStatus(BaseModel):
    """The answer of the `status` query: where the saga stands and what it has done.

    Steps and compensations are named by their activities. `compensations_recorded` lists the
    undo of every step that may have taken effect (registered before the step ran, dropped if
    it was refused). `compensations_run` lists every compensation that is done, including
    those an operator marked done by hand, which `resolved_by_hand` lists again with the
    operator's reason. `ids` holds what each step done created, by its key (`charge_id`, ...).
    """

    order_id: str
    state: str
    steps_done: list[str] = []
    compensations_recorded: list[str] = []
    compensations_run: list[str] = []
    failed_step: str | None = None
    failure_type: str | None = None
    failure_reason: str | None = None
    attention: Attention | None = None
    resolved_by_hand: dict[str, str] = {}
    withdrawn: bool = False
    ids: dict[str, str] = {}


class OrderResult(_Model):
    """What a confirmed order's saga returns: `ids` of what each step created, by key."""

    order_id: str
    state: str
    total: int
    currency: str
    ids: dict[str, str]
