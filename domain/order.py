"""An order: what a customer places, and the saga's input made of it.

Money is always an integer number of minor units (cents) plus an ISO 4217 currency code.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_extra_types.payment import PaymentCardNumber

from domain.fields import (
    COUNTRY_CODES,
    MAX_ITEMS_PER_ORDER,
    MAX_QUANTITY_PER_ITEM,
    MAX_UNIT_PRICE,
    Currency,
    Identifier,
    OptionalText,
    ShortText,
    StrictModel,
    WholeNumber,
    one_of,
    worded,
)
from domain.policy import SagaPolicy
from domain.problems import CARD_TAG, TOKEN_TAG, describe_errors


class OrderItem(StrictModel):
    """One line of an order."""

    sku: Identifier
    quantity: Annotated[
        WholeNumber,
        Field(ge=1, le=MAX_QUANTITY_PER_ITEM),
        worded(
            f"must be a whole number from 1 to {MAX_QUANTITY_PER_ITEM}",
            greater_than_equal="must be at least 1",
            less_than_equal=f"must be at most {MAX_QUANTITY_PER_ITEM} per item",
        ),
    ]
    unit_price: Annotated[
        WholeNumber,
        Field(ge=1, le=MAX_UNIT_PRICE, description="Price of one unit, minor units."),
        worded(
            "must be a positive whole number of minor units (cents), such as 1500 for 15.00",
            less_than_equal=f"must be at most {MAX_UNIT_PRICE} minor units (cents)",
        ),
    ]


class Address(StrictModel):
    """Where the order is shipped."""

    name: ShortText
    line1: ShortText
    line2: OptionalText = ""
    city: ShortText
    postal_code: Annotated[
        str,
        StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9 -]{2,12}$"),
        worded("must be 2 to 12 letters, digits, spaces or '-'"),
    ]
    country: Annotated[
        str,
        StringConstraints(strip_whitespace=True, to_upper=True),
        one_of(COUNTRY_CODES),
        Field(description="ISO 3166-1 alpha-2 country code."),
        worded("must be a two-letter ISO 3166 country code such as US"),
    ]


class PaymentMethod(StrictModel):
    """A card as the saga knows it: a token from the Payment service, never the card number."""

    token: Annotated[
        str,
        StringConstraints(pattern=r"^tok_[A-Za-z0-9_]{1,64}$"),
        worded("must be a Payment-service token: 'tok_' then 1 to 64 letters, digits or '_'"),
    ]
    last4: Annotated[
        str,
        StringConstraints(pattern=r"^[0-9]{4}$"),
        worded("must be the last four digits of the card"),
    ]


def _digits_only(card_number: Any) -> Any:
    # As printed on the card: groups of digits separated by spaces or dashes.
    return re.sub(r"[ -]", "", card_number) if isinstance(card_number, str) else card_number


class CardDetails(StrictModel):
    """A card as the customer typed it. Only the starter and the Payment service see it."""

    card_number: Annotated[
        PaymentCardNumber,
        BeforeValidator(_digits_only),
        worded(
            "must be a card number of 12 to 19 digits",
            payment_card_number_luhn="is not a valid card number (wrong check digit: mistyped?)",
            payment_card_number_brand="has the wrong number of digits for its card brand",
        ),
    ]
    exp_month: Annotated[int, Field(ge=1, le=12), worded("must be a month from 1 to 12")]
    exp_year: Annotated[
        int, Field(ge=2000, le=2100), worded("must be a four-digit year from 2000 to 2100")
    ]


class _Order(StrictModel):
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

    def is_repeat_of(self, placed: OrderRequest) -> bool:
        """Whether this order, placed again, is the same order as `placed`.

        Every field the same, the card named by its last four digits: each tokenization of a
        card gives a new token, so the starter placing an order twice sends two.
        """
        same_card = {"payment": {"token"}}
        return self.model_dump(exclude=same_card) == placed.model_dump(exclude=same_card)


def _payment_kind(value: Any) -> str | None:
    if isinstance(value, CardDetails) or (isinstance(value, dict) and "card_number" in value):
        return CARD_TAG
    if isinstance(value, PaymentMethod) or (isinstance(value, dict) and "token" in value):
        return TOKEN_TAG
    return None


class OrderForm(_Order):
    """An order as submitted to the starter: paid by card details or by an existing token."""

    payment: Annotated[
        Annotated[CardDetails, Tag(CARD_TAG)] | Annotated[PaymentMethod, Tag(TOKEN_TAG)],
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
