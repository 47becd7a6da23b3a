"""The soak's verdict on its windows: the end against the start, on the machine's yardstick."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ops.soak import SoakConfig, summary


def window(cpu: float, yardstick: float, p50: float, worker_mb: float) -> dict[str, Any]:
    return {
        "cpu_ms_per_order": {"server": cpu / 2, "workers": cpu / 2},
        "yardstick_ms": yardstick,
        "p50_ms": p50,
        "rss_mb": {"workers": worker_mb, "api": 100.0},
    }


def test_a_machine_that_slowed_down_is_not_taken_for_a_dearer_saga() -> None:
    warm_up = [window(300, 50, 900, 90)]
    start = [window(100, 50, 1000, 100), window(110, 50, 1100, 100), window(90, 50, 900, 100)]
    middle = [window(500, 50, 5000, 104)] * 4  # a slow stretch in the middle: not compared
    end = [window(130, 65, 1300, 105), window(130, 65, 1200, 105), window(140, 70, 1400, 108)]

    verdict = summary([*warm_up, *start, *middle, *end], warmup=1)

    assert verdict["cpu_ms_per_order"] == {"start": 100, "end": 130}
    assert verdict["cpu_end_to_start"] == 1.3
    assert verdict["yardstick_end_to_start"] == 1.3
    assert verdict["cpu_end_to_start_on_yardstick"] == 1.0
    assert verdict["p50_end_to_start"] == 1.3
    assert verdict["memory_growth"] == {"workers": 0.2, "api": 0.0}  # from the warm-up's end


def test_the_warm_up_lasts_until_the_stores_have_filled_to_their_retention() -> None:
    config = SoakConfig(retention=timedelta(minutes=5))  # deleted within 5.5 minutes
    every_minute = [60.0 * minute for minute in range(20)]
    assert config.warmup_windows(every_minute) == 6  # began at 0 to 5 minutes: still filling
    assert config.warmup_windows([0.1 * n for n in range(30)]) == 3  # all filling: a tenth
    assert config.warmup_windows([30.0 * n for n in range(16)]) == 1  # would leave five: a tenth
