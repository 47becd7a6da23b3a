"""`order-saga bench`: throughput and latency of the saga, next to a baseline on the same setup.

Two runs in one invocation, on the same server and the same worker settings (`worker.py`'s
`tuned_worker`), one after the other so they do not share the CPU:

1. the baseline: `BaselineWorkflow`, four no-op activities, by `python -m ordersaga.ops.baseline`;
2. the saga: `OrderSaga` through the real services, by `python worker.py`.

Each run's workers are processes of their own (`--workers`), started before and stopped after
it, on a task queue of the run's own; a few warm-up orders run first and are not counted.
Latency is from the start request to the result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from ordersaga.exits import StartFailure
from ordersaga.models import workflow_id_for
from ordersaga.ops import baseline
from ordersaga.ops.cpu import CpuReading, Group, Pids
from ordersaga.ops.load import Place, Sample, run_load
from ordersaga.ops.options import add_temporal_options, fraction
from ordersaga.ops.report import cost_table, run_figures, table, write_chart
from ordersaga.ops.rig import Rig, WorkerPool, embedded_rig_in, log_into, remote_rig
from ordersaga.ops.workload import (
    Kind,
    Mix,
    baseline_id,
    baseline_place,
    final_states,
    history_length,
    make_order,
    saga_place,
)
from ordersaga.policy import SagaPolicy
from services.faults import FaultSettings
from workflows.order_steps import CONFIRMED


@dataclass(frozen=True)
class BenchConfig:
    """What to run.

    Attributes:
        orders: Orders per run (after the warm-up).
        concurrency: Closed loop: orders in flight.
        rate: Open loop: orders placed per second (instead of `concurrency`).
        mix: Shares of orders refused at each step.
        fault_rate: Share of the services' mutating calls that fail with a transient 5xx.
        latency_ms: Added to each of the services' mutating calls.
        workers: Worker processes per run.
        warmup: Orders run before each measured run, not counted.
        baseline: Run the baseline too.
        seed: Seed of the order mix.
        policy: The saga's timeouts and retries (part of each order).
    """

    orders: int = 500
    concurrency: int | None = 20
    rate: float | None = None
    mix: Mix = field(default_factory=Mix)
    fault_rate: float = 0.0
    latency_ms: int = 0
    workers: int = 1
    warmup: int = 20
    baseline: bool = True
    seed: int = 1
    policy: SagaPolicy = field(default_factory=SagaPolicy)

    def as_json(self) -> dict[str, Any]:
        """The configuration as it goes into the results."""
        config = asdict(self)
        config["policy"] = self.policy.model_dump(mode="json")
        return config


@asynccontextmanager
async def bench_rig(
    data_dir: Path | None, address: str | None, services_url: str | None
) -> AsyncIterator[Rig]:
    """The server and services to bench: those at `address`/`services_url`, or our own."""
    if address and services_url:
        yield await remote_rig(address, services_url, data_dir or Path(tempfile.mkdtemp()))
        return
    if address or services_url:
        raise StartFailure("give both --address and --services-url, or neither")
    async with embedded_rig_in(data_dir, "bench") as rig:
        yield rig


async def bench(rig: Rig, config: BenchConfig, console: Console | None = None) -> dict[str, Any]:
    """Run the baseline (if asked) and the saga on `rig`; return the results, JSON-ready."""
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]
    runs: dict[str, dict[str, Any]] = {}
    await rig.set_faults(FaultSettings(error_rate=config.fault_rate, latency_ms=config.latency_ms))
    try:
        if config.baseline:
            queue = f"bench-baseline-{run_id}"
            place = baseline_place(rig.client, queue, run_id)
            async with WorkerPool(rig, queue, baseline.COMMAND).running(config.workers) as pool:
                samples, cpu = await _measured(place, config, "baseline", console, pool)
            runs["baseline"] = run_figures(samples) | {
                "cpu_ms_per_order": cpu,
                "history_events": {
                    "confirmed": await history_length(rig.client, baseline_id(run_id, 0))
                },
            }
        queue = f"bench-saga-{run_id}"
        kinds = Mix().kinds(config.warmup, random.Random()) + config.mix.kinds(
            config.orders, random.Random(config.seed)
        )
        orders = [make_order(f"b{run_id}-{i}", k, config.policy) for i, k in enumerate(kinds)]
        async with WorkerPool(rig, queue).running(config.workers) as pool:
            place = saga_place(rig.client, queue, orders)
            samples, cpu = await _measured(place, config, "saga", console, pool)
            measured = [orders[config.warmup + s.index].order_id for s in samples]
            ended = await final_states(rig.client, measured)
        runs["saga"] = run_figures(samples, Counter(ended.values())) | {
            "cpu_ms_per_order": cpu,
            "history_events": await _history_per_path(rig, ended),
        }
    finally:
        await rig.set_faults()
    return {
        "run_id": run_id,
        "config": config.as_json(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "runs": runs,
        "ratios": _ratios(runs),
    }


async def _measured(
    place: Place, config: BenchConfig, label: str, console: Console | None, pool: WorkerPool
) -> tuple[list[Sample], dict[str, float]]:
    """Warm up, then the measured run (its items numbered from 0), with a progress bar.

    Returns the samples and the CPU each group of processes spent per item of the measured run.
    """
    if config.warmup:
        await run_load(place, config.warmup, concurrency=min(config.warmup, 10))

    def shifted(index: int) -> Any:
        return place(config.warmup + index)

    pids = _pids(pool)
    with Progress(console=console or Console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=config.orders)
        advance: Callable[[Sample], None] = lambda _: progress.advance(task)  # noqa: E731
        before = CpuReading.now(pids)
        samples = await run_load(
            shifted,
            config.orders,
            concurrency=None if config.rate else config.concurrency,
            rate=config.rate,
            on_done=advance,
        )
        cpu = CpuReading.now(pids).per_item_ms(before, len(samples))
    return samples, cpu


def _pids(pool: WorkerPool) -> Pids:
    """Each group's processes; the server's and the services' only if the rig started them."""
    rig = pool.rig
    server = rig.server.pid if rig.server else None
    services = rig.services.pid if rig.services else None
    pids: dict[Group, Callable[[], list[int]]] = {
        Group.WORKERS: lambda: pool.pids,
        Group.LOAD: lambda: [os.getpid()],
    }
    if server:
        pids[Group.SERVER] = lambda: [server]
    if services:
        pids[Group.SERVICES] = lambda: [services]
    return pids


async def _history_per_path(rig: Rig, ended: dict[str, str]) -> dict[str, int]:
    """Events in the history of one saga per final state (its path)."""
    first_of_state = {state: order_id for order_id, state in reversed(ended.items())}
    return {
        state: await history_length(rig.client, workflow_id_for(order_id))
        for state, order_id in sorted(first_of_state.items())
    }


def _ratios(runs: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """The saga's figures as multiples of the baseline's."""
    if "baseline" not in runs or "saga" not in runs:
        return {}
    saga, base = runs["saga"], runs["baseline"]
    saga_events = saga["history_events"].get(CONFIRMED)
    # The services and the load generator do next to nothing for the baseline: no ratio.
    cpu = {
        f"cpu_{group}": round(saga["cpu_ms_per_order"][group] / base["cpu_ms_per_order"][group], 3)
        for group in (Group.SERVER, Group.WORKERS)
        if base["cpu_ms_per_order"].get(group)
    }
    return {
        "throughput": round(saga["orders_per_s"] / base["orders_per_s"], 3),
        **{
            f"latency_{key}": round(saga["latency_ms"][key] / base["latency_ms"][key], 3)
            for key in ("p50", "p95", "p99")
        },
        **cpu,
        "history_events": (
            round(saga_events / base["history_events"]["confirmed"], 3) if saga_events else None
        ),
    }


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `order-saga bench` and its options."""
    parser = commands.add_parser(
        "bench", help="measure saga throughput and latency against a no-op baseline"
    )
    add_load_options(parser, orders=500)
    loop = parser.add_mutually_exclusive_group()
    loop.add_argument("--concurrency", type=int, default=20, help="closed loop: orders in flight")
    loop.add_argument("--rate", type=float, help="open loop: orders placed per second")
    for kind in (Kind.DECLINED, Kind.OUT_OF_STOCK, Kind.UNSERVED):
        flag = "--" + kind.value.replace("_", "-")
        parser.add_argument(flag, type=fraction, default=0.0, help=f"share of {kind} orders")
    parser.add_argument("--warmup", type=int, default=20, help="uncounted orders before each run")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    parser.add_argument(
        "--local-activities",
        action="store_true",
        help="the fast path: the saga's steps and compensations as local activities",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--chart", type=Path, help="write a PNG chart here")
    add_temporal_options(parser)
    parser.add_argument("--services-url", help="services of a running stack (with --address)")


def add_load_options(parser: argparse.ArgumentParser, *, orders: int) -> None:
    """Options bench and chaos share."""
    parser.add_argument("-n", "--orders", type=int, default=orders, help="[default %(default)s]")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--fault-rate", type=fraction, default=0.0, help="transient 5xx share")
    parser.add_argument("--latency-ms", type=int, default=0, help="added to each service call")
    parser.add_argument("--seed", type=int, default=1, help="of the order mix and the faults")
    parser.add_argument(
        "--data-dir", type=Path, help="keep the stack's databases and logs here [a temp dir]"
    )


async def run_command(args: argparse.Namespace) -> int:
    """Run `order-saga bench`: print the table, write the JSON and the chart."""
    config = BenchConfig(
        orders=args.orders,
        concurrency=args.concurrency,
        rate=args.rate,
        mix=Mix(args.declined, args.out_of_stock, args.unserved),
        fault_rate=args.fault_rate,
        latency_ms=args.latency_ms,
        workers=args.workers,
        warmup=args.warmup,
        baseline=args.baseline,
        seed=args.seed,
        policy=SagaPolicy(local_activities=args.local_activities),
    )
    console = Console(stderr=True)
    console.print("Starting the stack…" if not args.address else "Using the running stack…")
    async with bench_rig(args.data_dir, args.address, args.services_url) as rig:
        log_into(rig.log_dir)
        results = await bench(rig, config, console)
    print(table(results["runs"]))
    print()
    print(cost_table(results["runs"]))
    for name, ratio in results["ratios"].items():
        print(f"saga/baseline {name}: {ratio}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
        print(f"results: {args.out}")
    if args.chart:
        write_chart(results["runs"], args.chart)
        print(f"chart: {args.chart}")
    return 0
