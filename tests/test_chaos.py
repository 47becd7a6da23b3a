"""A short chaos run that breaks every part once or more; every saga ends, nothing is lost."""

from __future__ import annotations

from pathlib import Path

from ordersaga.ops.chaos import Break, ChaosConfig, chaos
from ordersaga.ops.rig import embedded_rig

ENDED = {"OrderConfirmed", "Aborted", "Failed"}


async def test_a_chaos_run_that_kills_every_part_ends_every_saga_with_no_violation(
    tmp_path: Path,
) -> None:
    breaks = {what: 1 for what in Break} | {Break.WORKER_KILL: 2}
    config = ChaosConfig(
        orders=80,
        concurrency=16,
        breaks=breaks,
        fault_rate=0.1,
        lost_answers=0.1,
        latency_ms=10,
        workers=2,
    )
    async with embedded_rig(tmp_path) as rig:
        result = await chaos(rig, config)

    assert result.placed == 80
    assert sum(result.states.values()) == 80
    assert set(result.states) <= ENDED, result.states  # none running, none needing attention
    assert result.states["OrderConfirmed"] > 0
    assert result.states["Aborted"] > 0  # compensations ran under chaos too
    assert result.survived == breaks
    assert [s.ended for s in result.schedule] == sorted(s.ended for s in result.schedule)
    downed = [s for s in result.schedule if s.what in (Break.SERVICES_KILL, Break.SERVER_KILL)]
    assert all(s.detail.startswith("down ") for s in downed)
    assert result.audit.violations == [], result.audit.summary()
    assert sum(result.audit.outcomes.values()) == 80
    # The lost answers were retried onto effects that had committed: their idempotency held.
    faults = (tmp_path / "services.log").read_text().count("fault_after_commit")
    assert faults > 0
