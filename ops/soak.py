"""`order-saga soak`: what the project costs as its work grows, over a long run.

Every long-running part runs in a process of its own: the dev server, the stand-in services, a
worker, the Order API and the consumers; the consumers and the services forget what ended
sagas left as the retention says. The orders go through the Order API, closed loop (or at a
set rate), in windows; after each window the soak reads what that window cost (CPU per order of
each process, latency), the memory of each process, the size of every file in the data folder,
and how many sagas the server stores. At the end it
times the reads an operator makes at that size: the audit (whose verdict it reports), the
dashboard's frame, the first page of `GET /orders` and `GET /attention`.

The server keeps ended sagas for the retention too, so every store reaches its bound once the
retention has passed. The start and the end of the run are compared within the invocation (the
machines are shared and noisy): the median of the first windows after the warm-up (a tenth of
the run, and until the stores are at their bound) against the median of the last.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import secrets
import sqlite3
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress

from domain.policy import SagaPolicy
from infra.devserver import deletion_spread
from infra.exits import StartFailure
from infra.settings import ENV_FILE_VARIABLE, EVENTS_FILE, event_log_url
from ops.audit import PAST_RETENTION, audit
from ops.cpu import CpuReading, Group, Pids, rss_bytes
from ops.dashboard import frame
from ops.load import run_load
from ops.options import duration, fraction, positive_float, positive_int
from ops.report import percentile
from ops.rig import Rig, WorkerPool, embedded_rig_in, log_into
from ops.stack import api_process, stop_process
from ops.workload import Mix, api_client, api_place, make_order
from ordersaga.api.auth import Tokens
from ordersaga.consumers.monitoring import MONITORING_FILE, MonitoringStore
from ordersaga.consumers.notifications import NOTIFICATIONS_FILE
from workflows import OrderSaga

#: Rows that grow with the orders, counted after each window: file, table.
COUNTED_ROWS = {
    "events": (EVENTS_FILE, "events"),
    "monitoring": (MONITORING_FILE, "sagas"),
    "notifications": (NOTIFICATIONS_FILE, "notifications"),
    "order_records": ("services/orders.db", "orders"),
}

#: Every event the log has been given, pruned or not (its positions are never reused).
EVENTS_PUBLISHED = "SELECT seq FROM sqlite_sequence WHERE name = 'events'"

#: The files the retention bounds.
PRUNED_FILES = frozenset(file for file, _ in COUNTED_ROWS.values())

#: Windows at each end of the run whose median is compared.
ENDS = 3

#: The yardstick: loops of its work, and how many times it is timed.
YARDSTICK_LOOPS = 500_000
YARDSTICK_TIMINGS = 5

#: Times each read at the end of the run is made; the median is reported.
READS = 3


@dataclass(frozen=True)
class SoakConfig:
    """What to run.

    Attributes:
        orders: Orders placed in all.
        window: Orders per window; figures are read after each.
        concurrency: Orders in flight (a closed loop: as fast as the stack goes), unless `rate`.
        rate: Orders placed per second whatever the stack does (an open loop: a steady shop
            whose stack has room left for its background work, such as deleting ended sagas).
        retention: The `DATA_RETENTION` of the consumers and the server.
        mix: Shares of orders refused at each step (so that compensations and cancellation
            messages grow too).
        policy: The saga's timeouts and retries, and its path.
        seed: Seed of the order mix.
    """

    orders: int = 20_000
    window: int = 1_000
    concurrency: int = 20
    rate: float | None = None
    retention: timedelta = timedelta(minutes=5)
    mix: Mix = field(default_factory=lambda: Mix(declined=0.05, out_of_stock=0.05, unserved=0.05))
    policy: SagaPolicy = field(default_factory=SagaPolicy)
    seed: int = 1

    @property
    def in_flight(self) -> int | None:
        """The orders in flight of a closed loop; None for an open loop (a rate)."""
        return None if self.rate else self.concurrency

    def warmup_windows(self, began_s: list[float]) -> int:
        """Windows not compared: memory is compared from their end, CPU after them.

        The first tenth of the windows (at least one), and those that began before the oldest
        sagas could be deleted (the stores were still filling up), unless that would leave too
        few to compare: the run is then shorter than the retention, and compared as it went.

        Args:
            began_s: When each window began, in seconds after the first.
        """
        tenth = max(1, len(began_s) // 10)
        filling = self.retention + deletion_spread(self.retention)
        filled = sum(began < filling.total_seconds() for began in began_s)
        return max(tenth, filled) if filled <= len(began_s) - 2 * ENDS else tenth


@asynccontextmanager
async def consumers_process(
    data_dir: Path, event_bus: str, retention: timedelta, log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run `order-saga consumers` on `data_dir` and `event_bus` for the length of the context."""
    env = os.environ | {ENV_FILE_VARIABLE: ""}
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ops.cli", "consumers", "--data-dir", str(data_dir),
            "--event-bus", event_bus, "--data-retention", str(retention.total_seconds()),
            env=env, stdout=out, stderr=out,
        )  # fmt: skip
        try:
            yield process
        finally:
            await stop_process(process)


async def soak(
    rig: Rig,
    config: SoakConfig,
    console: Console | None = None,
    on_window: Callable[[list[dict[str, Any]]], None] = lambda windows: None,
) -> dict[str, Any]:
    """Run the soak on `rig`; return its figures, JSON-ready.

    Args:
        rig: The server and services.
        config: What to run.
        console: Where progress is shown.
        on_window: Given the windows so far after each one, so that a long run stopped early
            still leaves its figures.
    """
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]
    kinds = config.mix.kinds(config.orders, random.Random(config.seed))
    orders = [make_order(f"s{run_id}-{i}", kind, config.policy) for i, kind in enumerate(kinds)]
    queue = f"soak-{run_id}"
    tokens = Tokens(shop=secrets.token_urlsafe(16), operator=secrets.token_urlsafe(16))
    async with AsyncExitStack() as running:
        # The soak measures its own data folder: its events go there, whatever EVENT_BUS says.
        bus = event_log_url(rig.log_dir)
        pool = await running.enter_async_context(
            WorkerPool(rig, queue, env={"EVENT_BUS": bus}).running(1)
        )
        api = await running.enter_async_context(
            api_process(rig.address, queue, tokens, rig.log_dir / "api.log")
        )
        consumers = await running.enter_async_context(
            consumers_process(rig.log_dir, bus, config.retention, rig.log_dir / "consumers.log")
        )
        shop = await running.enter_async_context(api_client(api.url, tokens.shop))
        operator = await running.enter_async_context(api_client(api.url, tokens.operator))
        pids = _pids(rig, pool, api.pid, consumers.pid)
        place = api_place(shop, rig.client, orders)
        windows: list[dict[str, Any]] = []
        began = time.monotonic()
        with Progress(console=console or Console(stderr=True), transient=True) as progress:
            bar = progress.add_task("soak", total=config.orders)
            for first in range(0, config.orders, config.window):
                count = min(config.window, config.orders - first)

                def shifted(index: int, first: int = first) -> Awaitable[str]:
                    return place(first + index)

                began_s = round(time.monotonic() - began, 1)
                figures = await _window(rig, shifted, count, config, pids)
                windows.append({"orders": first + count, "began_s": began_s} | figures)
                on_window(windows)
                progress.advance(bar, count)
        if consumers.returncode is not None:
            raise StartFailure(
                f"the consumers exited with code {consumers.returncode} during the soak; "
                f"see {rig.log_dir / 'consumers.log'}"
            )
        audit_began = time.monotonic()
        audited = await audit(rig.client, _services_dir(rig))
        reads = {"audit": round((time.monotonic() - audit_began) * 1000, 1)}
        reads |= await _reads(rig, operator)
    return {
        "run_id": run_id,
        "config": {
            "orders": config.orders,
            "window": config.window,
            "concurrency": config.in_flight,
            "rate": config.rate,
            "retention_s": config.retention.total_seconds(),
            "local_activities": config.policy.local_activities,
        },
        "windows": windows,
        "summary": summary(windows, config.warmup_windows([w["began_s"] for w in windows])),
        "reads_ms": reads,
        "audit": {
            "orders": sum(audited.outcomes.values()),
            "past_retention": audited.outcomes[PAST_RETENTION],
            "violations": len(audited.violations),
        },
    }


def _pids(rig: Rig, pool: WorkerPool, api: int, consumers: int) -> Pids:
    groups: dict[Group, Callable[[], list[int]]] = {
        Group.WORKERS: lambda: pool.pids,
        Group.API: lambda: [api],
        Group.CONSUMERS: lambda: [consumers],
        Group.LOAD: lambda: [os.getpid()],
    }
    # The soak's rig is its own: it started the server and the services.
    if rig.server and rig.server.pid:
        server = rig.server.pid
        groups[Group.SERVER] = lambda: [server]
    if rig.services and rig.services.pid:
        services = rig.services.pid
        groups[Group.SERVICES] = lambda: [services]
    return groups


async def _window(
    rig: Rig, place: Callable[[int], Awaitable[str]], count: int, config: SoakConfig, pids: Pids
) -> dict[str, Any]:
    """Place `count` orders; what they cost and what the stack holds afterwards."""
    before, began = CpuReading.now(pids), time.monotonic()
    samples = await run_load(place, count, concurrency=config.in_flight, rate=config.rate)
    seconds = time.monotonic() - began
    spent = CpuReading.now(pids).spent_since(before)
    latencies = [sample.latency_s * 1000 for sample in samples]
    stored = await rig.client.count_workflows(f"WorkflowType = '{OrderSaga.__name__}'")
    sizes = {path.relative_to(rig.log_dir): path.stat().st_size for path in _files(rig.log_dir)}
    return {
        "yardstick_ms": yardstick_ms(),
        "outcomes": dict(Counter(sample.outcome for sample in samples)),
        "orders_per_s": round(count / seconds, 2),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "cpu_ms_per_order": {group: round(s * 1000 / count, 2) for group, s in spent.items()},
        "rss_mb": {group.value: round(rss_bytes(of()) / 2**20, 1) for group, of in pids.items()},
        "sagas_stored": stored.count,
        "rows": {
            name: _rows(rig.log_dir / file, f"SELECT count(*) FROM {table}")
            for name, (file, table) in COUNTED_ROWS.items()
        }
        | {"events_published": _rows(rig.log_dir / EVENTS_FILE, EVENTS_PUBLISHED)},
        "data_mb": _sizes(sizes),
        "files_kb": {str(path): round(size / 1024, 1) for path, size in sorted(sizes.items())},
    }


def _sizes(sizes: Mapping[Path, int]) -> dict[str, float]:
    """Megabytes in the data folder by who keeps them (a database with its WAL files).

    Args:
        sizes: Each file's size in bytes, by its path in the data folder.
    """
    kept = Counter[str]()
    for path, size in sizes.items():
        if path.parts[0] == "services":
            owner = "services"
        elif ".log" in path.suffixes:  # a log and its rolled lines
            owner = "logs"
        elif path.name.startswith("temporal.db"):
            owner = "temporal"
        elif path.name.split("-")[0] in PRUNED_FILES:
            owner = "pruned"
        else:
            owner = "other"
        kept[owner] += size
    return {owner: round(size / 2**20, 2) for owner, size in sorted(kept.items())}


def yardstick_ms() -> float:
    """CPU milliseconds of a fixed piece of pure-Python work: this machine's speed just now.

    A shared machine's speed drifts within an hour, for every process alike; a window's cost
    is compared with another's on this yardstick (the median of a few timings).
    """
    timings = []
    for _ in range(YARDSTICK_TIMINGS):
        began = time.process_time()
        sum(number * number % 7 for number in range(YARDSTICK_LOOPS))
        timings.append((time.process_time() - began) * 1000)
    return round(statistics.median(timings), 2)


def _rows(path: Path, count: str) -> int | None:
    if not path.exists():
        return None
    # Read-only, so that counting never takes a lock the running processes want.
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        found = conn.execute(count).fetchone()
    return int(found[0]) if found else 0


def _files(folder: Path) -> Iterator[Path]:
    return (path for path in folder.rglob("*") if path.is_file())


async def _reads(rig: Rig, operator: httpx.AsyncClient) -> dict[str, float]:
    """Milliseconds of the operator's quick reads at the size the run reached (median of some)."""

    def dashboard() -> None:
        Console(file=io.StringIO(), width=120).print(
            frame(MonitoringStore.in_folder(rig.log_dir), timedelta(hours=1))
        )

    async def timed(read: Callable[[], Awaitable[object]]) -> float:
        times = []
        for _ in range(READS):
            began = time.monotonic()
            await read()
            times.append((time.monotonic() - began) * 1000)
        return round(statistics.median(times), 1)

    async def get(path: str) -> None:
        (await operator.get(path)).raise_for_status()

    return {
        "dashboard": await timed(lambda: asyncio.to_thread(dashboard)),
        "get_orders": await timed(lambda: get("/orders")),
        "get_attention": await timed(lambda: get("/attention")),
    }


def _services_dir(rig: Rig) -> Path:
    assert rig.services_dir is not None, "the soak's rig is its own: it started the services"
    return rig.services_dir


def summary(windows: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """The end of the run against its start.

    Args:
        windows: Every window's figures, in order.
        warmup: Windows of the warm-up: memory is compared from the end of the last of them,
            CPU and latency from the windows after them.
    """
    measured = windows[warmup:] or windows
    ends = max(1, min(ENDS, len(measured) // 2))
    start, end = measured[:ends], measured[-ends:]

    def median(of: list[dict[str, Any]], figure: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(figure(window) for window in of)

    def cpu(window: dict[str, Any]) -> float:
        return float(sum(window["cpu_ms_per_order"].values()))

    def on_yardstick(window: dict[str, Any]) -> float:
        return cpu(window) / float(window["yardstick_ms"])

    warm, last = windows[warmup - 1]["rss_mb"], windows[-1]["rss_mb"]
    yardstick = median(end, lambda w: w["yardstick_ms"]) / median(
        start, lambda w: w["yardstick_ms"]
    )
    return {
        "warmup_windows": warmup,
        "cpu_ms_per_order": {"start": median(start, cpu), "end": median(end, cpu)},
        "cpu_end_to_start": round(median(end, cpu) / median(start, cpu), 3),
        "yardstick_end_to_start": round(yardstick, 3),
        "cpu_end_to_start_on_yardstick": round(
            median(end, on_yardstick) / median(start, on_yardstick), 3
        ),
        "p50_end_to_start": round(
            median(end, lambda w: w["p50_ms"]) / median(start, lambda w: w["p50_ms"]), 3
        ),
        "memory_growth": {
            group: round(last[group] / warm[group] - 1, 3) for group in last if warm.get(group)
        },
    }


def report(results: Mapping[str, Any]) -> str:
    """The windows as a table, then the end against the start and the reads at the end."""
    windows = results["windows"]
    groups = list(windows[0]["rss_mb"])
    owners = sorted({owner for window in windows for owner in window["data_mb"]})
    lines = [
        f"{'orders':>7} {'stored':>7} {'orders/s':>8} {'p50 ms':>7} {'CPU ms':>7}  "
        + " ".join(f"{group:>9}" for group in groups)
        + f"  {'events':>7} {'notes':>6}  "
        + " ".join(f"{owner:>9}" for owner in owners),
        f"{'':>7} {'':>7} {'':>8} {'':>7} {'/order':>7}  "
        + " ".join(f"{'RSS MB':>9}" for _ in groups)
        + f"  {'rows':>7} {'rows':>6}  "
        + " ".join(f"{'MB':>9}" for _ in owners),
    ]
    for window in windows:
        rows = window["rows"]
        lines.append(
            f"{window['orders']:>7} {window['sagas_stored']:>7} {window['orders_per_s']:>8} "
            f"{window['p50_ms']:>7} {sum(window['cpu_ms_per_order'].values()):>7.1f}  "
            + " ".join(f"{window['rss_mb'][group]:>9}" for group in groups)
            + f"  {rows['events'] or 0:>7} {rows['notifications'] or 0:>6}  "
            + " ".join(f"{window['data_mb'].get(owner, 0):>9}" for owner in owners)
        )
    end = results["summary"]
    cpu = end["cpu_ms_per_order"]
    lines += [
        "",
        f"compared: the first windows after a warm-up of {end['warmup_windows']} against the last",
        f"CPU ms/order: {cpu['start']:.1f} at the start, {cpu['end']:.1f} at the end "
        f"(end / start {end['cpu_end_to_start']}; the machine's yardstick took "
        f"{end['yardstick_end_to_start']}x as long at the end, so on it "
        f"{end['cpu_end_to_start_on_yardstick']}); p50 end / start {end['p50_end_to_start']}",
        "memory after the warm-up: "
        + ", ".join(f"{group} {growth:+.1%}" for group, growth in end["memory_growth"].items()),
        "reads at the end, ms: "
        + ", ".join(f"{name} {ms}" for name, ms in results["reads_ms"].items()),
        f"audit: {results['audit']['orders']} orders "
        f"({results['audit']['past_retention']} past the retention, not judged), "
        f"{results['audit']['violations']} violation(s)",
    ]
    return "\n".join(lines)


def write_chart(results: Mapping[str, Any], path: Path) -> None:
    """CPU and latency, memory, and the data folder's size against the orders placed, as a PNG."""
    import matplotlib  # only when a chart is drawn: it takes a second to load

    matplotlib.use("Agg")
    from matplotlib import pyplot

    windows = results["windows"]
    x = [window["orders"] for window in windows]
    figure, (cost, memory, data) = pyplot.subplots(1, 3, figsize=(15, 4.5))
    cost.plot(x, [sum(w["cpu_ms_per_order"].values()) for w in windows], label="CPU ms/order")
    cost.plot(x, [w["p50_ms"] for w in windows], label="p50 ms")
    for group in windows[0]["rss_mb"]:
        memory.plot(x, [w["rss_mb"][group] for w in windows], label=group)
    for owner in sorted({owner for window in windows for owner in window["data_mb"]}):
        data.plot(x, [w["data_mb"].get(owner, 0) for w in windows], label=owner)
    cost.set(title="Cost per order", xlabel="orders placed", ylim=(0, None))
    memory.set(title="Memory (RSS)", xlabel="orders placed", ylabel="MB", ylim=(0, None))
    data.set(title="Data folder", xlabel="orders placed", ylabel="MB", ylim=(0, None))
    for axes in (cost, memory, data):
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def _write_windows(out: Path | None, windows: list[dict[str, Any]]) -> None:
    if out:
        out.write_text(json.dumps({"windows": windows}, indent=1))


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `order-saga soak` and its options."""
    parser = commands.add_parser(
        "soak", help="a long run: cost, memory and data size as the orders and stored sagas grow"
    )
    defaults = SoakConfig()
    parser.add_argument(
        "-n", "--orders", type=positive_int, default=defaults.orders, help="[default %(default)s]"
    )
    parser.add_argument(
        "--window",
        type=positive_int,
        default=defaults.window,
        help="orders between two readings [default %(default)s]",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=defaults.concurrency,
        help="orders in flight, as fast as the stack goes [default %(default)s]",
    )
    parser.add_argument(
        "--rate",
        type=positive_float,
        help="orders placed per second instead, whatever the stack does (a steady shop)",
    )
    parser.add_argument(
        "--retention",
        type=duration,
        default=defaults.retention,
        help="DATA_RETENTION of the consumers and the server: seconds or ISO 8601 [default 300 s]",
    )
    for kind, share in asdict(defaults.mix).items():
        flag = "--" + kind.replace("_", "-")
        parser.add_argument(flag, type=fraction, default=share, help=f"share of {kind} orders")
    parser.add_argument(
        "--local-activities",
        action="store_true",
        help="the fast path: the saga's steps and compensations as local activities",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="of the order mix")
    parser.add_argument(
        "--data-dir", type=Path, help="keep the stack's databases and logs here [a temp dir]"
    )
    parser.add_argument(
        "--out", type=Path, help="write the figures as JSON here (the windows so far after each)"
    )
    parser.add_argument("--chart", type=Path, help="write a PNG chart here")


async def run_command(args: argparse.Namespace) -> int:
    """Run `order-saga soak`: print the table, write the JSON and the chart."""
    config = SoakConfig(
        orders=args.orders,
        window=min(args.window, args.orders),
        concurrency=args.concurrency,
        rate=args.rate,
        retention=args.retention,
        mix=Mix(args.declined, args.out_of_stock, args.unserved),
        policy=SagaPolicy(local_activities=args.local_activities),
        seed=args.seed,
    )
    console = Console(stderr=True)
    console.print("Starting the stack…")
    async with embedded_rig_in(args.data_dir, "soak", retention=config.retention) as rig:
        log_into(rig.log_dir)
        results = await soak(rig, config, console, on_window=partial(_write_windows, args.out))
    print(report(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
        print(f"results: {args.out}")
    if args.chart:
        write_chart(results, args.chart)
        print(f"chart: {args.chart}")
    return 0
