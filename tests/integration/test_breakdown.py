"""The breakdown's switches still reach the parts they switch off (`tests/support/breakdown.py`).

The breakdown is a profiling run, not part of the suite; what can rot unseen is its patching,
which would leave a renamed part on while the figures say it is off.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.breakdown import VARIANTS, replace


def test_every_variant_switches_off_methods_the_saga_has() -> None:
    parts = sorted({part for variant in VARIANTS.values() for part in variant})
    # In a process of its own: the patches are for good.
    code = (
        "from tests.support.breakdown import switch_off; "
        "from workflows.order_record import OrderRecord as R; "
        "from workflows.order_saga import OrderSaga as S; "
        "before = (R.carrying, S._publish_events, R._count, R._state_changed); "
        f"switch_off({tuple(parts)!r}); "
        "after = (R.carrying, S._publish_events, R._count, R._state_changed); "
        "assert all(b is not a for b, a in zip(before, after)), after"
    )

    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert run.returncode == 0, run.stderr


def test_a_part_whose_method_is_gone_is_refused() -> None:
    class Record:
        def step_done(self) -> None: ...

    with pytest.raises(AttributeError, match=r"Record._state_changed is gone"):
        replace(Record, "_state_changed", lambda self: None)
