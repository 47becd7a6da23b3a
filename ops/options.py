"""Options the operational commands share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import timedelta

from pydantic import ValidationError

from infra.exits import StartFailure
from infra.settings import as_retention
from services.faults import FaultSettings, option_error

#: The option that sets each of the services' fault settings, for bench and chaos.
FAULT_OPTIONS = {
    "error_rate": "--fault-rate",
    "lost_answer_rate": "--lost-answers",
    "latency_ms": "--latency-ms",
}


def add_temporal_options(parser: argparse.ArgumentParser) -> None:
    """Add `--address` and `--namespace`.

    Left out, the project's settings decide (environment, Temporal's config profile, defaults),
    as for every other process.
    """
    parser.add_argument("--address", default=None, help="Temporal frontend host:port")
    parser.add_argument("--namespace", default=None, help="Temporal namespace")


def fraction(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction from 0 to 1")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number from 1 (orders, workers, rounds, orders in flight)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number from 1 up")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number from 0 (warm-up orders, milliseconds, kills)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number from 0 up")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number above 0 (orders per second)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number above 0")
    return value


def check_faults(make: Callable[[], FaultSettings]) -> None:
    """Check that `make()`, the services' fault settings from the options, can be made.

    Called before anything starts, so that settings out of range stop a command at once.

    Raises:
        StartFailure: `make()` failed, in one line naming the options and the problem.
    """
    try:
        make()
    except ValidationError as err:
        raise StartFailure(option_error(err, FAULT_OPTIONS)) from None


def duration(text: str) -> timedelta:
    """A retention: seconds, or ISO 8601 (P7D, PT10M), longer than nothing."""
    try:
        return as_retention(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text}: {err}") from None
