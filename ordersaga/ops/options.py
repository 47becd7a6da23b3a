"""Options the operational commands share."""

from __future__ import annotations

import argparse


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
