"""`order-saga chaos`: a bench run with faults, then the audit. Nothing may be lost.

On its own embedded stack (the dev server must be restartable), while N orders run:

- the worker is SIGKILLed K times at random moments, a new one starting each time;
- the dev server is stopped and started again once, on its database;
- the services fail a share of their mutating calls with transient 5xx and add latency.

Then it waits for every saga to end and audits the services' databases against Temporal.
The orders use a short policy (2 s activity timeout, retries from 0.2 s, many attempts), so a
killed worker's activities are retried within seconds instead of the default 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import Progress

from ordersaga.ops.audit import AuditReport, audit
from ordersaga.ops.bench import add_load_options
from ordersaga.ops.load import Sample, run_load
from ordersaga.ops.options import fraction
from ordersaga.ops.rig import Rig, WorkerPool, embedded_rig_in
from ordersaga.ops.workload import Mix, final_states, make_order, saga_place
from ordersaga.policy import ActivityPolicy, SagaPolicy

#: Short timeouts so the chaos heals fast; attempts enough that 10 % faults never exhaust them.
CHAOS_POLICY = SagaPolicy(
    steps=ActivityPolicy(
        timeout_s=2.0, first_retry_s=0.2, max_retry_interval_s=1.0, max_attempts=20
    ),
    compensations=ActivityPolicy(
        timeout_s=2.0, first_retry_s=0.2, max_retry_interval_s=1.0, max_attempts=50
    ),
)


@dataclass(frozen=True)
class ChaosConfig:
    """What to run and what to break.

    Attributes:
        orders: Orders placed.
        concurrency: Orders in flight.
        kills: Worker SIGKILLs, at random moments.
        restart_server: Restart the dev server once, at a random moment.
        fault_rate: Share of the services' mutating calls that fail with a transient 5xx.
        latency_ms: Added to each of the services' mutating calls.
        workers: Worker processes.
        mix: Shares of orders refused at each step (so compensations run under chaos too).
        seed: Seed of the order mix and of the moments of the kills and the restart.
    """

    orders: int = 200
    concurrency: int = 20
    kills: int = 3
    restart_server: bool = True
    fault_rate: float = 0.1
    latency_ms: int = 20
    workers: int = 1
    mix: Mix = field(default_factory=lambda: Mix(declined=0.1, out_of_stock=0.05, unserved=0.1))
    seed: int = 1


@dataclass
class ChaosResult:
    """What happened, and what the audit found."""

    placed: int
    states: Counter[str]
    kills: int
    restarts: int
    audit: AuditReport

    def summary(self) -> str:
        """Orders, outcomes, faults survived and violations, a line each."""
        states = ", ".join(f"{n} {state}" for state, n in sorted(self.states.items()))
        return "\n".join(
            [
                f"orders placed: {self.placed}",
                f"ended: {states}",
                f"worker kills survived: {self.kills}",
                f"server restarts survived: {self.restarts}",
                "audit:",
                *(f"  {line}" for line in self.audit.summary().splitlines()),
            ]
        )


async def chaos(rig: Rig, config: ChaosConfig, console: Console | None = None) -> ChaosResult:
    """Run the orders on `rig` while breaking things; wait for every saga; audit."""
    assert rig.server is not None and rig.services_dir is not None, "chaos needs its own stack"
    rng = random.Random(config.seed)
    kinds = config.mix.kinds(config.orders, rng)
    orders = [make_order(f"chaos-{rng.getrandbits(48):012x}", k, CHAOS_POLICY) for k in kinds]
    # Moments as numbers of sagas ended: the faults fall while sagas are in flight.
    kill_at = sorted(
        rng.randrange(config.orders // 10, config.orders * 8 // 10) for _ in range(config.kills)
    )
    restart_at = rng.randrange(config.orders // 5, config.orders * 7 // 10)
    restarts = 0
    pool = WorkerPool(rig, f"chaos-{rng.getrandbits(32):08x}")
    ended = asyncio.Event()
    done = 0

    def on_done(sample: Sample) -> None:
        nonlocal done
        done += 1
        ended.set()
        progress.advance(task)

    async def reached(count: int) -> None:
        while done < count:  # woken at each saga's end: no polling interval
            ended.clear()
            await ended.wait()

    async def break_things() -> None:
        nonlocal restarts
        events = [(at, "kill") for at in kill_at] + [
            (restart_at, "restart")
        ] * config.restart_server
        for at, what in sorted(events):
            await reached(at)
            if what == "kill":
                await pool.kill_and_replace(rng)
            else:
                assert rig.server is not None
                await rig.server.stop()
                await rig.server.start()
                restarts += 1

    await rig.set_faults(config.fault_rate, config.latency_ms)
    with Progress(console=console or Console(stderr=True), transient=True) as progress:
        task = progress.add_task("chaos", total=config.orders)
        async with pool.running(config.workers):
            breaker = asyncio.create_task(break_things())
            try:
                samples = await run_load(
                    saga_place(rig.client, pool.task_queue, orders),
                    config.orders,
                    concurrency=config.concurrency,
                    on_done=on_done,
                )
            except BaseException:
                breaker.cancel()  # the load failed: stop breaking things
                raise
            await breaker  # the last kill's replacement may still be starting
            await rig.set_faults()
            states = await final_states(rig.client, [orders[s.index].order_id for s in samples])
    report = await audit(rig.client, rig.services_dir)
    return ChaosResult(len(samples), states, pool.kills, restarts, report)


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `order-saga chaos` and its options."""
    parser = commands.add_parser(
        "chaos", help="run orders while killing workers and restarting Temporal; then audit"
    )
    add_load_options(parser, orders=200)
    parser.set_defaults(fault_rate=0.1, latency_ms=20)
    parser.add_argument("--concurrency", type=int, default=20, help="orders in flight")
    parser.add_argument("--kills", type=int, default=3, help="worker SIGKILLs")
    parser.add_argument(
        "--no-restart", dest="restart_server", action="store_false", help="keep the server up"
    )
    parser.add_argument("--declined", type=fraction, default=0.1, help="share of declined cards")


async def run_command(args: argparse.Namespace) -> int:
    """Run `order-saga chaos`; the exit code is 1 if the audit found any violation."""
    config = ChaosConfig(
        orders=args.orders,
        concurrency=args.concurrency,
        kills=args.kills,
        restart_server=args.restart_server,
        fault_rate=args.fault_rate,
        latency_ms=args.latency_ms,
        workers=args.workers,
        mix=Mix(declined=args.declined, out_of_stock=0.05, unserved=0.1),
        seed=args.seed,
    )
    console = Console(stderr=True)
    console.print("Starting the stack…")
    async with embedded_rig_in(args.data_dir, "chaos") as rig:
        result = await chaos(rig, config, console)
    print(result.summary())
    return 0 if result.audit.ok else 1
