"""Amounts in minor units, written for people."""

from __future__ import annotations

#: Currencies (of those the shop accepts) with no minor unit: ISO 4217 exponent 0. The others
#: have two decimals.
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY"})


def format_money(minor_units: float, currency: str) -> str:
    """`4500, "USD"` -> `"45.00 USD"`; `450000, "JPY"` -> `"450,000 JPY"`.

    Fractions of a minor unit (an average, a rate) are rounded to the nearest minor unit.
    """
    digits = 0 if currency in ZERO_DECIMAL_CURRENCIES else 2
    return f"{minor_units / 10**digits:,.{digits}f} {currency}"
