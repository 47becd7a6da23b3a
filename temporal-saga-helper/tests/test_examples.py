"""The examples run as a user runs them, each in a process of its own, and say what they did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parents[1] / "examples"


def run_example(name: str) -> list[str]:
    """Run `examples/<name>.py`; the lines it printed."""
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")], capture_output=True, text=True, timeout=120
    )
    if run.returncode != 0:
        # Older temporalio releases' Rust threads can crash a short process as the interpreter
        # exits, after its work is done (SIGABRT with "PyGILState_Release", or SIGSEGV;
        # temporalio/sdk-python#300): the SDK's exit, not the example's, whose whole story is
        # checked below.
        crashed_at_exit = run.returncode in (-6, -11) and "Traceback" not in run.stderr
        assert crashed_at_exit, run.stderr[-3000:]
    # The SDK's core logs its own warnings on stdout (newer SDKs warn that the test server is
    # older than they like): they are not the example's.
    return [line for line in run.stdout.splitlines() if "temporalio_sdk_core" not in line]


def test_the_trip_undoes_the_flight_and_the_hotel_when_the_car_is_refused() -> None:
    assert run_example("trip") == ["booked flight; booked hotel; cancelled hotel; cancelled flight"]


def test_the_cancelled_trip_waits_for_an_operator_to_settle_the_hotel() -> None:
    assert run_example("trip_with_operator") == [
        "booked flight",
        "booked hotel",
        "the customer cancels the trip",
        "cancelled car",
        "an operator settles the hotel: cancelled by phone",
        "cancelled flight",
        "trip ended: CancelledError",
    ]
