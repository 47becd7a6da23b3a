"""Refused input told in plain words: one line per problem, naming the field, never the value."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

# Tags of an order form's payment kinds. They appear in error locations, where describe_errors
# drops them; a '-' keeps them from ever being taken for a field name.
CARD_TAG = "by-card"
TOKEN_TAG = "by-token"

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
        field = ".".join(str(part) for part in location if part not in (CARD_TAG, TOKEN_TAG))
        if problem["type"] == "json_invalid":  # of the whole document, wherever it broke
            field = ""
            message = f"is not valid JSON ({problem.get('ctx', {}).get('error', 'unreadable')})"
        else:
            message = _GENERAL_MESSAGES.get(problem["type"], problem["msg"])
        if not field and message == "must be an object":
            message = "must be a JSON object"
        lines.append(f"{field or 'order'}: {message.removeprefix('Value error, ')}")
    return lines
