"""A short chaos run: workers killed, the server restarted, faults; every saga ends, no loss."""

from __future__ import annotations

from pathlib import Path

from ordersaga.ops.chaos import ChaosConfig, chaos
from ordersaga.ops.rig import embedded_rig

ENDED = {"OrderConfirmed", "Aborted", "Failed"}


async def test_chaos_run_ends_every_saga_with_no_violation(tmp_path: Path) -> None:
    config = ChaosConfig(
        orders=100, concurrency=20, kills=1, restart_server=True, fault_rate=0.1, latency_ms=10
    )
    async with embedded_rig(tmp_path) as rig:
        result = await chaos(rig, config)

    assert result.placed == 100
    assert sum(result.states.values()) == 100
    assert set(result.states) <= ENDED, result.states  # none running, none needing attention
    assert result.states["OrderConfirmed"] > 0
    assert result.states["Aborted"] > 0  # compensations ran under chaos too
    assert (result.kills, result.restarts) == (1, 1)
    assert result.audit.violations == [], result.audit.summary()
    assert sum(result.audit.outcomes.values()) == 100
