"""`order-saga bench`: the saga's throughput, latency and cost, next to two yardsticks.

Three runs in one invocation, on the same server and the same worker settings (`worker.py`'s
`tuned_worker`):

1. the baseline: `BaselineWorkflow`, four no-op activities, by `python -m ops.baseline`: what
   the engine alone costs;
2. the peer: `PeerOrderSaga` (`peer/`), the saga a user would write by hand from Temporal's
   guidance, making the same calls to the same services, by `python -m peer`: what any saga on
   these services costs;
3. the saga: `OrderSaga` through the real services, by `python worker.py`.

Each run's workers are processes of their own (`--workers`), on a task queue of the run's own;
a few warm-up orders run first and are not counted. The measured orders of each run are placed
in rounds that alternate between the runs, never at once (baseline, peer, saga, saga, peer,
baseline, ...): a change in the machine's load during the invocation then falls on every run
alike, instead of on whichever ran last. The rounds are short (`ROUND_ORDERS` orders each, a
second or two), because the shared machines change speed within seconds: with a few long rounds
the ratios between runs spread several times wider (docs/performance.md). A run's figures pool
its rounds. Latency is from the start request to the result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.progress import Progress
from temporalio.client import Client
from temporalio.envconfig import ClientConfig

from domain.ids import workflow_id_for
from domain.order import OrderRequest
from domain.policy import SagaPolicy
from infra.exits import StartFailure
from ops import baseline
from ops.cpu import CpuReading, Group, Pids
from ops.load import Place, Sample, run_load
from ops.options import (
    add_temporal_options,
    check_faults,
    fraction,
    non_negative_int,
    positive_float,
    positive_int,
)
from ops.report import cost_table, ratio_table, run_figures, table, write_chart
from ops.rig import Rig, WorkerPool, embedded_rig_in, log_into, remote_rig
from ops.stack import api_process
from ops.workload import (
    Kind,
    Mix,
    api_client,
    api_place,
    baseline_id,
    baseline_place,
    final_states,
    history_length,
    make_order,
    peer_place,
    peer_workflow_id,
    saga_place,
)
from ordersaga.api.auth import Tokens
from services.faults import FaultSettings
from workflows.order_steps import CONFIRMED

#: Orders in each round of a run, unless `--rounds` says otherwise.
ROUND_ORDERS = 30


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
        rounds: Rounds each run's measured orders are split into, alternating between the runs;
            None: rounds of about `ROUND_ORDERS` orders.
        baseline: Run the baseline too.
        peer: Run the hand-written peer saga too.
        seed: Seed of the order mix.
        policy: The saga's timeouts and retries (part of each order).
        via: How the saga's orders are placed: by a Temporal `client`, or through the
            Order `api` (`order-saga api`, a process of its own).
    """

    orders: int = 500
    concurrency: int | None = 20
    rate: float | None = None
    mix: Mix = field(default_factory=Mix)
    fault_rate: float = 0.0
    latency_ms: int = 0
    workers: int = 1
    warmup: int = 20
    rounds: int | None = None
    baseline: bool = True
    peer: bool = True
    seed: int = 1
    policy: SagaPolicy = field(default_factory=SagaPolicy)
    via: Literal["client", "api"] = "client"

    @property
    def faults(self) -> FaultSettings:
        """How the services misbehave during the measured runs."""
        return FaultSettings(error_rate=self.fault_rate, latency_ms=self.latency_ms)

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


async def bench(
    rig: Rig,
    config: BenchConfig,
    console: Console | None = None,
    saga_worker: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run the baseline and the peer (if asked) and the saga on `rig`; return the results.

    Args:
        rig: The server and services.
        config: What to run.
        console: Where progress is shown.
        saga_worker: Another program for the saga's workers (`python worker.py` by default),
            such as a profiling run's (`tests/support/breakdown.py`).

    Returns:
        The results, JSON-ready.
    """
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]
    kinds = Mix().kinds(config.warmup, random.Random()) + config.mix.kinds(
        config.orders, random.Random(config.seed)
    )
    orders = [make_order(f"b{run_id}-{i}", k, config.policy) for i, k in enumerate(kinds)]
    # The same orders under ids of their own: the services record each order id once.
    peer_orders = [make_order(f"p{run_id}-{i}", k, config.policy) for i, k in enumerate(kinds)]
    queue = f"bench-saga-{run_id}"
    peer_client = await plain_client(rig) if config.peer else None
    await rig.set_faults(config.faults)
    try:
        async with AsyncExitStack() as workers:
            saga = await _saga_run(workers, rig, config, queue, orders, saga_worker)
            runs = [saga]
            if peer_client:
                queue = f"bench-peer-{run_id}"
                place = peer_place(peer_client, queue, peer_orders)
                runs.insert(0, _MeasuredRun("peer", place, WorkerPool(rig, queue, PEER_COMMAND)))
            if config.baseline:
                queue = f"bench-baseline-{run_id}"
                place = baseline_place(rig.client, queue, run_id)
                pool = WorkerPool(rig, queue, baseline.COMMAND)
                runs.insert(0, _MeasuredRun("baseline", place, pool))
            for run in runs:
                await workers.enter_async_context(run.pool.running(config.workers))
            await _run_in_rounds(runs, config, console)
            measured = [orders[config.warmup + sample.index].order_id for sample in saga.samples]
            ended = await final_states(rig.client, measured)  # a query: needs the workers
    finally:
        await rig.set_faults()
    figures = {"saga": saga.figures(Counter(ended.values()), await _history_per_path(rig, ended))}
    by_label = {run.label: run for run in runs}
    if peer_client:
        happy = next(o for o, kind in zip(peer_orders, kinds, strict=True) if kind is Kind.HAPPY)
        events = await history_length(peer_client, peer_workflow_id(happy))
        figures = {"peer": by_label["peer"].figures(None, {"confirmed": events})} | figures
    if config.baseline:
        confirmed = {"confirmed": await history_length(rig.client, baseline_id(run_id, 0))}
        figures = {"baseline": by_label["baseline"].figures(None, confirmed)} | figures
    return {
        "run_id": run_id,
        "config": config.as_json(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "runs": figures,
        "ratios": _ratios(figures, "baseline", ENGINE_GROUPS),
        "peer_ratios": _ratios(figures, "peer", tuple(Group)),
    }


#: How bench starts a worker of the peer saga.
PEER_COMMAND = (sys.executable, "-m", "peer")

#: The groups whose CPU the bare-engine ratios compare: the services and the load generator do
#: next to nothing for the baseline.
ENGINE_GROUPS = (Group.SERVER, Group.WORKERS)


async def plain_client(rig: Rig) -> Client:
    """A client of the rig's server as the peer's workers connect (`peer/__main__.py`).

    TLS and API key as Temporal's SDK reads them from the environment or profile, the SDK's
    default data converter.
    """
    config = ClientConfig.load_client_connect_config()
    config["target_host"], config["namespace"] = rig.address, rig.client.namespace
    return await Client.connect(**config)


async def _saga_run(
    running: AsyncExitStack,
    rig: Rig,
    config: BenchConfig,
    queue: str,
    orders: list[OrderRequest],
    worker: Sequence[str] | None,
) -> _MeasuredRun:
    """The saga's run: its orders placed by a Temporal client, or through the Order API.

    The API runs in a process of its own, its CPU counted, until `running` ends.
    """
    pool = WorkerPool(rig, queue, worker)
    if config.via == "client":
        return _MeasuredRun("saga", saga_place(rig.client, queue, orders), pool)
    tokens = Tokens(shop=secrets.token_urlsafe(16), operator=secrets.token_urlsafe(16))
    log = running.enter_context((rig.log_dir / "api.log").open("ab"))
    api = await running.enter_async_context(api_process(rig.address, queue, tokens, log))
    http = await running.enter_async_context(api_client(api.url, tokens.shop))
    return _MeasuredRun("saga", api_place(http, rig.client, orders), pool, api.pid)


@dataclass
class _MeasuredRun:
    """One run's measured orders, placed round by round, and the CPU they cost.

    Attributes:
        label: "baseline", "peer" or "saga".
        place: Places item `i` of the run (the warm-up's first, then the measured ones).
        pool: The run's workers.
        api_pid: The Order API's process, if the orders go through it.
        samples: The measured items so far, their times on one clock that skips the time
            between rounds (as if the rounds had run back to back).
        cpu_seconds: CPU seconds each group spent during the run's rounds.
        rounds: When each round began and ended, seconds since the first round began.
    """

    label: str
    place: Place
    pool: WorkerPool
    api_pid: int | None = None
    samples: list[Sample] = field(default_factory=list)
    cpu_seconds: Counter[str] = field(default_factory=Counter)
    rounds: list[tuple[float, float]] = field(default_factory=list)

    async def warm_up(self, orders: int) -> None:
        """Place items 0..orders-1, not counted."""
        if orders:
            await run_load(self.place, orders, concurrency=min(orders, 10))

    async def run_round(
        self,
        first: int,
        count: int,
        config: BenchConfig,
        on_done: Callable[[Sample], None],
        since: float,
    ) -> None:
        """Place `count` measured items from item `first` on (counted from the warm-up's end).

        `since` is when the first round began (`time.monotonic()`).
        """

        def shifted(index: int) -> Any:
            return self.place(config.warmup + first + index)

        pids = _pids(self.pool, self.api_pid)
        began, before = time.monotonic(), CpuReading.now(pids)
        samples = await run_load(
            shifted,
            count,
            concurrency=None if config.rate else config.concurrency,
            rate=config.rate,
            on_done=on_done,
        )
        self.cpu_seconds.update(CpuReading.now(pids).spent_since(before))
        self.rounds.append((round(began - since, 3), round(time.monotonic() - since, 3)))
        offset = max((s.ended_s for s in self.samples), default=0.0)
        self.samples += [
            replace(s, index=first + s.index, started_s=offset + s.started_s) for s in samples
        ]

    def figures(
        self, states: Counter[str] | None, history_events: dict[str, int]
    ) -> dict[str, Any]:
        """The run's figures (`report.run_figures`), its CPU per order and its history lengths.

        Args:
            states: The sagas' final states, counted; None for the baseline and the peer.
            history_events: Events in the history of one workflow per path.
        """
        cpu = {
            group: round(seconds * 1000 / len(self.samples), 2)
            for group, seconds in self.cpu_seconds.items()
        }
        return run_figures(self.samples, states) | {
            "cpu_ms_per_order": cpu,
            "history_events": history_events,
            "rounds": self.rounds,
        }


async def _run_in_rounds(
    runs: list[_MeasuredRun], config: BenchConfig, console: Console | None
) -> None:
    """Warm each run up, then place their measured orders in alternating rounds.

    The runs take turns in mirrored order (A B C, C B A, A B C, ...), so that a steady drift of
    the machine's speed favours none of them.
    """
    for run in runs:
        await run.warm_up(config.warmup)
    rounds = max(1, min(config.rounds or round(config.orders / ROUND_ORDERS), config.orders))
    size, extra = divmod(config.orders, rounds)
    with Progress(console=console or Console(stderr=True), transient=True) as progress:

        def advancing(label: str) -> Callable[[Sample], None]:
            task = progress.add_task(label, total=config.orders)
            return lambda _: progress.advance(task)

        bars = {run.label: advancing(run.label) for run in runs}
        first, since = 0, time.monotonic()
        for number in range(rounds):
            count = size + (number < extra)
            for run in runs if number % 2 == 0 else runs[::-1]:
                await run.run_round(first, count, config, bars[run.label], since)
            first += count


def _pids(pool: WorkerPool, api: int | None) -> Pids:
    """Each group's processes.

    The server's and the services' only if the rig started them, the Order API's if the
    orders go through it.
    """
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
    if api:
        pids[Group.API] = lambda: [api]
    return pids


async def _history_per_path(rig: Rig, ended: dict[str, str]) -> dict[str, int]:
    """Events in the history of one saga per final state (its path)."""
    first_of_state = {state: order_id for order_id, state in reversed(ended.items())}
    return {
        state: await history_length(rig.client, workflow_id_for(order_id))
        for state, order_id in sorted(first_of_state.items())
    }


def _ratios(
    runs: dict[str, dict[str, Any]], against: str, groups: tuple[Group, ...]
) -> dict[str, float | None]:
    """The saga's figures as multiples of the `against` run's.

    Args:
        runs: Each run's figures, by label.
        against: The yardstick: "baseline" or "peer".
        groups: The process groups whose CPU per order is compared one by one; against the
            peer, the CPU of all processes together is compared too (`cpu_all`).
    """
    if against not in runs or "saga" not in runs:
        return {}
    saga, base = runs["saga"], runs[against]
    saga_events = saga["history_events"].get(CONFIRMED)
    cpu = {
        f"cpu_{group}": round(saga["cpu_ms_per_order"][group] / base["cpu_ms_per_order"][group], 3)
        for group in groups
        if base["cpu_ms_per_order"].get(group) and group in saga["cpu_ms_per_order"]
    }
    if against == "peer":
        # Every process: the saga's API process, when it is used, is part of its cost.
        total = sum(saga["cpu_ms_per_order"].values()) / sum(base["cpu_ms_per_order"].values())
        cpu["cpu_all"] = round(total, 3)
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
        "bench",
        help="measure saga throughput, latency and cost against a no-op baseline and a "
        "hand-written peer saga",
    )
    add_load_options(parser, orders=500)
    loop = parser.add_mutually_exclusive_group()
    loop.add_argument(
        "--concurrency", type=positive_int, default=20, help="closed loop: orders in flight"
    )
    loop.add_argument("--rate", type=positive_float, help="open loop: orders placed per second")
    for kind in (Kind.DECLINED, Kind.OUT_OF_STOCK, Kind.UNSERVED):
        flag = "--" + kind.value.replace("_", "-")
        parser.add_argument(flag, type=fraction, default=0.0, help=f"share of {kind} orders")
    parser.add_argument(
        "--warmup", type=non_negative_int, default=20, help="uncounted orders before each run"
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        help="rounds each run's orders are split into, alternating between the runs "
        f"[default: about {ROUND_ORDERS} orders each]",
    )
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    parser.add_argument(
        "--no-peer",
        dest="peer",
        action="store_false",
        help="leave out the hand-written peer saga (peer/)",
    )
    parser.add_argument(
        "--local-activities",
        action="store_true",
        help="the fast path: the saga's steps and compensations as local activities",
    )
    parser.add_argument(
        "--via",
        choices=("client", "api"),
        default="client",
        help="place the saga's orders with a Temporal client, or through the Order API",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--chart", type=Path, help="write a PNG chart here")
    add_temporal_options(parser)
    parser.add_argument("--services-url", help="services of a running stack (with --address)")


def add_load_options(parser: argparse.ArgumentParser, *, orders: int) -> None:
    """Options bench and chaos share."""
    parser.add_argument(
        "-n", "--orders", type=positive_int, default=orders, help="[default %(default)s]"
    )
    parser.add_argument("--workers", type=positive_int, default=1, help="worker processes")
    parser.add_argument("--fault-rate", type=fraction, default=0.0, help="transient 5xx share")
    parser.add_argument(
        "--latency-ms", type=non_negative_int, default=0, help="added to each service call"
    )
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
        rounds=args.rounds,
        baseline=args.baseline,
        peer=args.peer,
        seed=args.seed,
        policy=SagaPolicy(local_activities=args.local_activities),
        via=args.via,
    )
    check_faults(lambda: config.faults)
    console = Console(stderr=True)
    console.print("Starting the stack…" if not args.address else "Using the running stack…")
    async with bench_rig(args.data_dir, args.address, args.services_url) as rig:
        log_into(rig.log_dir)
        results = await bench(rig, config, console)
    print(table(results["runs"]))
    print()
    print(cost_table(results["runs"]))
    print()
    print(ratio_table(results["ratios"], results["peer_ratios"]))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
        print(f"results: {args.out}")
    if args.chart:
        write_chart(results["runs"], args.chart)
        print(f"chart: {args.chart}")
    return 0
