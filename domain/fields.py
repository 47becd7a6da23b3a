"""The fields an order is made of, each refused in plain words that never repeat the value.

Pure: no I/O, no clocks, no randomness, so the workflow sandbox can pass this module through and
the same validation runs in the starter, the API and inside the workflow. (The one exception:
the list of country codes is read from pycountry's data once, at import.)
"""

from __future__ import annotations

from typing import Annotated, Any

import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from domain.money import SUPPORTED_CURRENCIES

#: ISO 3166-1 alpha-2 country codes, from pycountry's list. Read here, once, at import: pycountry
#: loads its data file on first use, and validation also runs inside the workflow sandbox, which
#: forbids opening files (so pydantic-extra-types' CountryAlpha2, which loads lazily, will not do).
COUNTRY_CODES = frozenset(country.alpha_2 for country in pycountry.countries)

#: Upper bounds that keep a typo (or an attack) from becoming a real order.
MAX_ITEMS_PER_ORDER = 50
MAX_QUANTITY_PER_ITEM = 1_000
MAX_UNIT_PRICE = 10_000_000  # minor units: 100,000.00 in a two-decimal currency
MAX_TEXT_LENGTH = 100
#: Steps an order may give a retry policy of their own (`SagaPolicy.step_overrides`).
MAX_STEP_OVERRIDES = 20


def worded(message: str, /, **by_error_type: str) -> WrapValidator:
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


def one_of(codes: frozenset[str]) -> AfterValidator:
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
    # A sign is kept, so "-1" typed is judged as -1 sent: the same words from every entry point.
    if isinstance(value, str) and not value.strip().removeprefix("-").isdecimal():
        raise PydanticCustomError("int_parsing", "not a whole number")
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"),
    worded("must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"),
]
ShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_LENGTH),
    worded(
        f"must be text of at most {MAX_TEXT_LENGTH} characters",
        string_too_short="must not be empty",
    ),
]
OptionalText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_TEXT_LENGTH),
    worded(f"must be text of at most {MAX_TEXT_LENGTH} characters"),
]
Currency = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_upper=True),
    one_of(SUPPORTED_CURRENCIES),
    worded(
        "must be the ISO 4217 code of a currency the shop accepts: "
        + ", ".join(sorted(SUPPORTED_CURRENCIES))
    ),
]


class StrictModel(BaseModel):
    """Base of the domain's inputs: unknown fields refused, frozen, input kept out of errors."""

    # hide_input_in_errors keeps card tokens and addresses out of error text (and so out of
    # workflow history and logs) when validation fails.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
