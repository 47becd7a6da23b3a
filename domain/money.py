"""Money: an integer number of minor units (cents) and an ISO 4217 currency code.

Amounts travel as minor units only; major units (`15.00 USD`) are accepted only where the
currency is written beside them, and printed beside the minor units, so that neither can be
taken for the other.
"""

from __future__ import annotations

import re
from decimal import Decimal

#: Currencies the shop accepts, each with its number of minor-unit digits (ISO 4217's
#: exponent: 1500 minor units are 15.00 USD, or 1500 JPY). A real shop would list the ones its
#: payment provider settles in.
CURRENCY_DIGITS = {
    **dict.fromkeys(("AUD", "BRL", "CAD", "CHF", "CNY", "DKK", "EUR", "GBP", "INR"), 2),
    **dict.fromkeys(("MXN", "NOK", "NZD", "PLN", "SEK", "SGD", "USD", "ZAR"), 2),
    "JPY": 0,
}
SUPPORTED_CURRENCIES = frozenset(CURRENCY_DIGITS)

_MAJOR_UNITS = re.compile(r"^(?P<amount>[0-9]+(?:\.[0-9]+)?)\s?(?P<currency>[A-Za-z]{3})$")


class MoneyError(ValueError):
    """An amount that cannot be read; the message says why without repeating it."""


def is_major_units(text: str) -> bool:
    """Whether `text` is an amount in major units with its currency, such as `15.00USD`."""
    return _MAJOR_UNITS.match(text.strip()) is not None


def minor_units(text: str, currency: str) -> int:
    """The minor units of `text`, an amount in major units with its currency (`15.00USD`).

    Raises:
        MoneyError: Not that form, another currency than `currency`, or more decimals than the
            currency has.
    """
    match = _MAJOR_UNITS.match(text.strip())
    if match is None:
        raise MoneyError("must be an amount and its currency, such as 15.00USD")
    written = match["currency"].upper()
    if written != currency:
        raise MoneyError(f"is in {written}, but the order is in {currency}")
    if written not in CURRENCY_DIGITS:
        raise MoneyError(f"is in {written}, a currency the shop does not accept")
    amount = Decimal(match["amount"]).scaleb(CURRENCY_DIGITS[written])
    if amount != amount.to_integral_value():
        raise MoneyError(f"has more decimals than {written} has ({CURRENCY_DIGITS[written]})")
    return int(amount)


def major_units(amount: int, currency: str) -> str:
    """`amount` minor units as major units: 1500, USD is `15.00 USD`."""
    digits = CURRENCY_DIGITS.get(currency, 2)
    return f"{Decimal(amount).scaleb(-digits):.{digits}f} {currency}"


def both_units(amount: int, currency: str) -> str:
    """`1500 minor units = 15.00 USD`: an amount that cannot be misread."""
    return f"{amount} minor units = {major_units(amount, currency)}"
