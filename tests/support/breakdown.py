"""Where the saga's cost over the peer goes: bench runs with one of its extras switched off.

A profiling run, not a product setting: `python -m tests.support.breakdown` runs `order-saga
bench`'s saga and peer (no baseline) once per variant below, the saga's workers being this module's
`worker` program, which switches the variant's parts off by patching the saga's modules before the
worker starts (the worker shares the `workflows` package with its sandbox, so the patched classes
are the ones its sagas run). It prints, per variant, the saga's figures over the peer's: CPU per
order by process group (concurrency 20) and p50 latency (concurrency 1). The figures go to
docs/performance.md.

    python -m tests.support.breakdown [--local-activities] [-n 200] [--lone 60]

"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from domain.policy import SagaPolicy

#: The environment variable that tells the worker program what to switch off.
OFF_VARIABLE = "BREAKDOWN_OFF"

#: The variants: what each switches off. Encryption is off in all of them, as in bench (no
#: payload key is configured); `encryption` switches it on, to price it.
VARIANTS: dict[str, tuple[str, ...]] = {
    "saga as shipped": (),
    "without events": ("events",),
    "without metrics and logs": ("metrics_logs",),
    "without details and search attributes": ("details",),
    "without all three": ("events", "metrics_logs", "details"),
    "with encryption": ("encryption",),
}


def switch_off(parts: tuple[str, ...]) -> None:
    """Patch the saga's modules so that `parts` do nothing.

    Raises:
        AttributeError: A part's method is gone (renamed, say): the run would measure it on.
    """
    from workflows.order_record import OrderRecord
    from workflows.order_saga import OrderSaga

    if "events" in parts:

        @contextlib.contextmanager
        def carry_nothing(self: OrderRecord, step: object = None) -> Iterator[None]:
            yield

        async def publish_nothing(self: OrderSaga) -> None:
            return None

        replace(OrderRecord, "carrying", carry_nothing)
        replace(OrderSaga, "_publish_events", publish_nothing)
    if "metrics_logs" in parts:
        replace(OrderRecord, "_count", lambda self, *args, **kwargs: None)
        replace(OrderRecord, "_took", lambda self, *args, **kwargs: None)
        logging.getLogger("temporalio.workflow").disabled = True
    if "details" in parts:
        replace(OrderRecord, "_state_changed", lambda self: None)


def replace(owner: type, name: str, stand_in: object) -> None:
    """Put `stand_in` in place of `owner`'s method `name`, which must exist.

    Raises:
        AttributeError: `owner` has no `name`: setting it would add a method nothing calls.
    """
    if not callable(getattr(owner, name, None)):
        raise AttributeError(
            f"{owner.__qualname__}.{name} is gone: update tests/support/breakdown.py"
        )
    setattr(owner, name, stand_in)


def run_worker() -> None:
    """The saga's worker, `python worker.py`, with the parts in `BREAKDOWN_OFF` switched off."""
    parts = tuple(part for part in os.environ.get(OFF_VARIABLE, "").split(",") if part)
    switch_off(parts)
    import worker

    sys.argv = [sys.argv[0]]
    worker.main()


async def measure(variant: str, local: bool, orders: int, lone: int) -> dict[str, Any]:
    """The saga's figures over the peer's, with `variant`'s parts switched off."""
    from infra.keyring import ensure_key_file
    from ops.bench import BenchConfig, bench
    from ops.rig import embedded_rig_in

    parts = VARIANTS[variant]
    os.environ[OFF_VARIABLE] = ",".join(parts)
    command = (sys.executable, "-m", "tests.support.breakdown", "worker")
    policy = SagaPolicy(local_activities=local)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="breakdown-keys-") as keys:
        if "encryption" in parts:  # before the rig: its client must encrypt too
            os.environ["CODEC_KEY_FILE"] = str(ensure_key_file(Path(keys) / "payload.key"))
        try:
            async with embedded_rig_in(None, "breakdown") as rig:
                busy = BenchConfig(orders=orders, baseline=False, policy=policy)
                results = await bench(rig, busy, saga_worker=command)
                runs = results["runs"]
                figures["cpu_ms_per_order"] = {
                    run: runs[run]["cpu_ms_per_order"] for run in ("saga", "peer")
                }
                figures["cpu_all"] = results["peer_ratios"]["cpu_all"]
                figures["throughput"] = results["peer_ratios"]["throughput"]
                quiet = BenchConfig(
                    orders=lone, concurrency=1, warmup=5, baseline=False, policy=policy
                )
                results = await bench(rig, quiet, saga_worker=command)
                figures["p50_ms"] = {
                    run: results["runs"][run]["latency_ms"]["p50"] for run in ("saga", "peer")
                }
                figures["p50"] = results["peer_ratios"]["latency_p50"]
        finally:
            os.environ.pop("CODEC_KEY_FILE", None)
    return figures


def main() -> None:
    """Run every variant and print the figures as JSON lines."""
    if sys.argv[1:2] == ["worker"]:
        run_worker()
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--local-activities", action="store_true")
    parser.add_argument("-n", "--orders", type=int, default=200)
    parser.add_argument("--lone", type=int, default=60, help="orders at concurrency 1")
    parser.add_argument("--variant", action="append", choices=list(VARIANTS))
    args = parser.parse_args()
    for variant in args.variant or VARIANTS:
        figures = asyncio.run(measure(variant, args.local_activities, args.orders, args.lone))
        print(json.dumps({"variant": variant, "local": args.local_activities, **figures}))


if __name__ == "__main__":
    main()
