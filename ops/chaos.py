"""`order-saga chaos`: orders run while every part of the stack is broken; then the audit.

On its own embedded stack, while N orders run, at random moments (counted in sagas ended, so
that each falls while sagas are in flight):

- a worker is SIGKILLed, a new one starting at once (`--kills`);
- the services' process is SIGKILLed and started again on its databases after a random pause
  (`--service-kills`), and so is the Temporal dev server (`--server-kills`); the server is also
  stopped gracefully and started again (`--server-restarts`);
- the faults flip to new random levels (`--flips`): the services fail a share of their mutating
  calls with a 5xx before the effect (`--fault-rate`), lose the answer of a share after the
  effect committed (`--lost-answers`), and add latency (`--latency-ms`);
- a new version of the workers is deployed and made current (`--deploys`): sagas running go on
  pinned to the version that started them, new ones start on the new version, and the old
  version's workers are stopped once no saga runs on it;
- a broken build (`ops.bad_builds`, each kind in turn) is rolled out with `deploy rollout`
  (`--bad-deploys`): the rollout must catch it and roll it back by itself, moving the sagas it
  started onto the good build; a broken build promoted counts against the run.

With `--network`, every part runs in a network namespace of its own (`ops.network`), the Order
API among them, read every second over a link of its own, and the links between them break
too, one at a time, each for a random while (`--link-fault-s`): a link cut, one way or both, or
set down (`--cuts`), a share of its packets lost (`--losses`), its packets delayed (`--delays`,
where the kernel has netem). When a link heals, the sagas it held are watched until each has
moved on: that time is the run's recovery.

Once every order is placed and every scheduled break has happened, the faults stop and the sagas
that wait for an operator (a compensation that ran out of attempts) are retried, as an operator
would. Then every saga has ended, and the audit checks the services' databases against Temporal.
The orders use a short policy (2 s activity timeout, retries from 0.2 s, many attempts), so the
work of a killed worker is retried within seconds instead of the default 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import random
import secrets
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from rich.console import Console
from rich.progress import Progress
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import WorkerDeploymentVersion

from domain.policy import ActivityPolicy, SagaPolicy
from domain.saga import OperatorAction, Resolution, SagaState
from infra.deployment import build_id
from infra.exits import StartFailure
from infra.settings import DEFAULT_DEPLOYMENT_NAME
from ops.api_reads import ApiReads, read_api
from ops.audit import AuditReport, audit
from ops.backlog import Recovery, held_sagas, until_moved_on
from ops.bad_builds import BadBuild, bad_build, build_id_of
from ops.bench import add_load_options
from ops.load import Sample, retry_transient, run_load
from ops.network import NO_NETEM, Direction, Link, netem_available, require_tools
from ops.options import check_faults, fraction, non_negative_int, positive_float, positive_int
from ops.recovery import recover
from ops.rig import Rig, WorkerPool, embedded_rig_in, log_into, network_api
from ops.rollout.control import Rollout, answer, start_rollout
from ops.rollout.plan import Phase, RolloutPlan
from ops.rollout.plan import Progress as RolloutProgress
from ops.routing import rollback
from ops.workload import Mix, final_states, make_order, saga_place
from ordersaga.api.auth import Tokens
from services.faults import FaultSettings
from workflows import OrderSaga
from workflows.search_attributes import saga_query

T = TypeVar("T")

#: Short timeouts so the chaos heals fast; attempts enough that 10 % faults never exhaust them.
CHAOS_POLICY = SagaPolicy(
    steps=ActivityPolicy(
        timeout_s=2.0, first_retry_s=0.2, max_retry_interval_s=1.0, max_attempts=20
    ),
    compensations=ActivityPolicy(
        timeout_s=2.0, first_retry_s=0.2, max_retry_interval_s=1.0, max_attempts=50
    ),
)

#: The steps a broken build is rolled out in: the first large enough that a short run gives it
#: sagas to be judged by (it holds until a few of them have ended).
BAD_ROLLOUT_STEPS = (10.0, 100.0)

#: How long a SIGKILLed part stays down before it is started again, in seconds.
DOWNTIME_S = (0.5, 3.0)


class Break(StrEnum):
    """A kind of harm chaos does."""

    WORKER_KILL = "worker SIGKILL"
    SERVICES_KILL = "services SIGKILL"
    SERVER_KILL = "server SIGKILL"
    SERVER_RESTART = "server restart"
    FLIP = "faults flipped"
    DEPLOY = "new version deployed"
    BAD_DEPLOY = "broken version rolled out"
    CUT = "link cut"
    LOSS = "link losing packets"
    DELAY = "link delaying packets"


#: The harm done to a link between parts: needs the rig's network; one link at a time.
LINK_BREAKS = (Break.CUT, Break.LOSS, Break.DELAY)

#: How many of each `--network` adds, unless told otherwise.
NETWORK_DEFAULTS = {Break.CUT: 4, Break.LOSS: 2, Break.DELAY: 2}

#: The share of a link's packets a loss drops, and the delay a slow link adds (jitter: a
#: quarter of it).
LOSS_RANGE = (0.1, 0.3)
DELAY_MS_RANGE = (200, 1000)


@dataclass(frozen=True)
class ChaosConfig:
    """What to run and what to break.

    Attributes:
        orders: Orders placed.
        concurrency: Orders in flight (a closed loop), unless `rate` is given.
        rate: Orders placed per second whatever happens (an open loop, as a shop's traffic
            comes): a broken link then builds a backlog, as it would in production.
        breaks: How many times each kind of harm is done.
        fault_rate: Share of the services' mutating calls that fail with a 5xx before the effect.
        lost_answers: Share of them whose effect commits and whose answer is lost.
        latency_ms: Added to each of the services' mutating calls.
        workers: Worker processes.
        mix: Shares of orders refused at each step (so compensations run under chaos too).
        seed: Seed of the order mix, of the moments and pauses of the breaks, and of the flips.
        link_fault_s: The shortest and the longest a link stays broken, in seconds.
    """

    orders: int = 200
    concurrency: int = 20
    rate: float | None = None
    breaks: dict[Break, int] = field(
        default_factory=lambda: {
            Break.WORKER_KILL: 3,
            Break.SERVICES_KILL: 1,
            Break.SERVER_KILL: 1,
            Break.SERVER_RESTART: 1,
            Break.FLIP: 2,
            Break.DEPLOY: 1,
            Break.BAD_DEPLOY: 0,
            Break.CUT: 0,
            Break.LOSS: 0,
            Break.DELAY: 0,
        }
    )
    fault_rate: float = 0.1
    lost_answers: float = 0.05
    latency_ms: int = 20
    workers: int = 1
    mix: Mix = field(default_factory=lambda: Mix(declined=0.1, out_of_stock=0.05, unserved=0.1))
    seed: int = 1
    link_fault_s: tuple[float, float] = (5.0, 120.0)

    @property
    def faults(self) -> FaultSettings:
        """The faults the run starts with."""
        return FaultSettings(
            error_rate=self.fault_rate,
            lost_answer_rate=self.lost_answers,
            latency_ms=self.latency_ms,
        )


@dataclass(frozen=True)
class Scheduled:
    """One break, as it happened.

    Attributes:
        at_s: Seconds since the load began.
        ended: Sagas ended by then.
        what: The kind of harm.
        detail: Its particulars: how long a part was down, the faults flipped to.
    """

    at_s: float
    ended: int
    what: Break
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.at_s:7.1f} s  {self.ended:5d} ended  {self.what}  {self.detail}".rstrip()


@dataclass
class ChaosResult:
    """What happened, and what the audit found.

    Attributes:
        placed: Orders placed.
        states: Sagas per final state.
        schedule: Every break, in order.
        retried: Sagas an operator's retry had to unblock once the faults stopped.
        drained: Build ids of the versions left behind by a deploy whose sagas all ended there,
            after which their workers were stopped.
        audit: The audit of the run.
        rollouts: How each rollout of a broken build ended.
        recoveries: After each heal of a link, how the sagas it held moved on.
        api: How the Order API answered the reads made of it, if it ran (`--network`).
        exited: The parts that exited on their own (not killed by the run).
    """

    placed: int
    states: Counter[str]
    schedule: list[Scheduled]
    retried: int
    drained: list[str]
    audit: AuditReport
    rollouts: list[RolloutProgress] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    api: ApiReads | None = None
    exited: list[str] = field(default_factory=list)

    @property
    def bad_builds_promoted(self) -> int:
        """Broken builds a rollout made current: each a failure of the rollout's judgement."""
        return sum(rollout.phase is Phase.PROMOTED for rollout in self.rollouts)

    @property
    def ok(self) -> bool:
        """Nothing went wrong.

        The audit found nothing, no broken build was promoted, no saga was stuck after a heal,
        the API always answered, and no part exited on its own.
        """
        return (
            self.audit.ok
            and not self.bad_builds_promoted
            and all(recovery.seconds is not None for recovery in self.recoveries)
            and (self.api is None or self.api.ok)
            and not self.exited
        )

    @property
    def survived(self) -> Counter[Break]:
        """How many breaks of each kind the run survived."""
        return Counter(scheduled.what for scheduled in self.schedule)

    def summary(self) -> str:
        """Orders, outcomes, breaks survived, the schedule and the audit."""
        states = ", ".join(f"{n} {state}" for state, n in sorted(self.states.items()))
        survived = ", ".join(f"{what}: {n}" for what, n in self.survived.items()) or "nothing"
        return "\n".join(
            [
                f"orders placed: {self.placed}",
                f"ended: {states}",
                f"survived: {survived}",
                f"sagas retried by the operator step once the faults stopped: {self.retried}",
                f"versions drained and their workers stopped: {', '.join(self.drained) or 'none'}",
                *self._rollout_lines(),
                *self._network_lines(),
                "schedule:",
                *(f"  {scheduled}" for scheduled in self.schedule),
                "audit:",
                *(f"  {line}" for line in self.audit.summary().splitlines()),
            ]
        )

    def _network_lines(self) -> list[str]:
        if self.api is None:
            return []
        times = sorted(r.seconds for r in self.recoveries if r.seconds is not None)
        stuck = sum(r.seconds is None for r in self.recoveries)
        recovery = (
            f"recovery (from a heal until every saga held had moved on): median "
            f"{statistics.median(times):.1f} s, longest {times[-1]:.1f} s; the last heal: "
            f"{self.recoveries[-1]}"
            if times
            else "recovery: no link healed"
        )
        return [
            f"{recovery}; stuck: {stuck}",
            f"Order API: {self.api}",
            f"parts that exited on their own: {', '.join(self.exited) or 'none'}",
        ]

    def _rollout_lines(self) -> list[str]:
        if not self.rollouts:
            return []
        reached = sum(rollout.reached for rollout in self.rollouts)
        kept = sum("kept" in line for rollout in self.rollouts for line in rollout.recovered)
        phases = Counter(str(rollout.phase) for rollout in self.rollouts)
        return [
            f"broken builds rolled out: {len(self.rollouts)} "
            f"({', '.join(f'{n} {phase}' for phase, n in sorted(phases.items()))}); "
            f"promoted: {self.bad_builds_promoted}",
            f"sagas that reached a broken build: {reached}; left on it (not recovered): {kept}",
        ]


async def chaos(rig: Rig, config: ChaosConfig, console: Console | None = None) -> ChaosResult:
    """Run the orders on `rig` while breaking things; end every saga; audit."""
    assert rig.services_dir, "chaos needs its own stack"
    run = _ChaosRun(rig, config)
    await rig.set_faults(run.faults)
    async with contextlib.AsyncExitStack() as watching:
        reads = await watching.enter_async_context(run.reading_the_api()) if rig.network else None
        with Progress(console=console or Console(stderr=True), transient=True) as progress:
            samples = await run.run(progress)
    final = await final_states(rig.client, [run.orders[s.index].order_id for s in samples])
    report = await audit(rig.client, rig.services_dir)
    return ChaosResult(
        len(samples),
        Counter(final.values()),
        sorted(run.schedule, key=lambda scheduled: scheduled.at_s),
        len(run.retried),
        run.drained,
        report,
        run.rollouts,
        run.recoveries,
        reads,
        run.exited,
    )


class _ChaosRun:
    """One chaos run: its orders, the moments of its breaks, and what happened."""

    def __init__(self, rig: Rig, config: ChaosConfig) -> None:
        assert rig.server and rig.services, "chaos needs its own stack"
        self.rig, self.config = rig, config
        self.server, self.services = rig.server, rig.services
        self.rng = rng = random.Random(config.seed)
        kinds = config.mix.kinds(config.orders, rng)
        self.orders = [
            make_order(f"chaos-{rng.getrandbits(48):012x}", kind, CHAOS_POLICY) for kind in kinds
        ]
        self.moments = sorted(
            (rng.randrange(config.orders // 10, config.orders * 8 // 10), what)
            for what, count in config.breaks.items()
            for _ in range(count)
        )
        self.pool = WorkerPool(rig, f"chaos-{rng.getrandbits(32):08x}")
        self.faults = config.faults
        self.schedule: list[Scheduled] = []
        self.retried: set[str] = set()
        self.drained: list[str] = []
        self.deploys = 0
        self.rollouts: list[RolloutProgress] = []
        self.recoveries: list[Recovery] = []
        self.exited: list[str] = []
        self._rollout: asyncio.Task[None] | None = None
        self._link_fault: asyncio.Task[None] | None = None
        self._links = {
            what: itertools.cycle(self.rng.sample(list(Link), len(Link))) for what in LINK_BREAKS
        }
        ways: list[Direction | None] = [*Direction, None]  # None: the link set down
        self._cut_ways = itertools.cycle(self.rng.sample(ways, len(ways)))
        self.began = time.monotonic()
        self.ended = asyncio.Event()
        self.all_placed = asyncio.Event()
        self.done = self.placed = 0
        self.last_ended: str | None = None
        self._place = saga_place(rig.client, self.pool.task_queue, self.orders, rig.places_with)

    @contextlib.asynccontextmanager
    async def reading_the_api(self) -> AsyncIterator[ApiReads]:
        """The Order API in its namespace, read every second for the length of the context.

        It is asked for the saga that ended last: one that exists, whose answer is 200, or
        503 while the API cannot reach Temporal or the saga's worker.
        """
        tokens = Tokens(shop=secrets.token_hex(16), operator=secrets.token_hex(16))
        reads = ApiReads()

        async with network_api(self.rig, self.pool.task_queue, tokens) as api:
            reader = asyncio.create_task(
                read_api(api.url, tokens.operator, lambda: self.last_ended, reads)
            )
            try:
                yield reads
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def run(self, progress: Progress) -> list[Sample]:
        """Place every order while the breaks happen; return once every saga has ended."""
        task = progress.add_task("chaos", total=self.config.orders)

        def on_done(sample: Sample) -> None:
            self.done += 1
            self.last_ended = self.orders[sample.index].order_id
            self.ended.set()
            progress.advance(task)

        async with self.pool.running(self.config.workers):
            breaker = asyncio.create_task(self._break_things())
            load = asyncio.create_task(
                run_load(
                    self._counted_place,
                    self.config.orders,
                    concurrency=None if self.config.rate else self.config.concurrency,
                    rate=self.config.rate,
                    on_done=on_done,
                )
            )
            try:
                await breaker
                while not load.done():
                    self.retried |= await retry_waiting_sagas(self.rig, self.pool.task_queue)
                    await self._stop_drained()
                    await asyncio.wait({load}, timeout=1.0)
                samples = await load
                self.exited = [*self.pool.exited, *(["services"] if self.services.exited else [])]
                self.drained += await self.pool.stop_drained(no_more_sagas=True)
                return samples
            finally:
                breaker.cancel()
                load.cancel()
                for background in (self._rollout, self._link_fault):
                    if background:
                        background.cancel()

    async def _counted_place(self, index: int) -> str:
        self.placed += 1
        if self.placed == self.config.orders:
            self.all_placed.set()
        return await self._place(index)

    async def _reached(self, count: int) -> None:
        while self.done < count:  # woken at each saga's end: no polling interval
            self.ended.clear()
            await self.ended.wait()

    async def _break_things(self) -> None:
        for at, what in self.moments:
            await self._reached(at)
            when, ended_then = time.monotonic() - self.began, self.done
            if what in (Break.BAD_DEPLOY, Break.DEPLOY):
                # One version change at a time: a rollout judges against the current version.
                await self._rollout_ended()
            doing = self._scheduled(when, ended_then, what)
            if what is Break.BAD_DEPLOY:  # the other breaks go on while it is rolled out
                self._rollout = asyncio.create_task(doing)
            elif what in LINK_BREAKS:  # one link broken at a time, while the other breaks go on
                await self._link_healed()
                self._link_fault = asyncio.create_task(doing)
            else:
                await doing
            await self._stop_drained()
        await self._rollout_ended()
        await self._link_healed()
        await self.all_placed.wait()
        await self.rig.set_faults()

    async def _scheduled(self, when: float, ended_then: int, what: Break) -> None:
        detail = await self._do(what)
        self.schedule.append(Scheduled(round(when, 1), ended_then, what, detail))

    async def _rollout_ended(self) -> None:
        if self._rollout:
            await self._rollout

    async def _link_healed(self) -> None:
        if self._link_fault:
            await self._link_fault

    async def _stop_drained(self) -> None:
        self.drained += await retry_transient(self.pool.stop_drained)

    async def _do(self, what: Break) -> str:
        if what is Break.WORKER_KILL:
            await self.pool.kill_and_replace(self.rng)
            return ""
        if what is Break.DEPLOY:
            label = f"deploy-{self.deploys + 1}"
            self.deploys += 1
            await self.pool.deploy(label, self.config.workers)
            return f"to {build_id(label)}"
        if what is Break.BAD_DEPLOY:
            return await self._bad_deploy()
        if what in LINK_BREAKS:
            return await self._break_link(what)
        if what is Break.SERVICES_KILL:
            detail = await self._down_and_up(self.services.kill, self.services.start)
            await self.rig.set_faults(self.faults)  # a new process starts well-behaved
            return detail
        if what is Break.SERVER_KILL:
            return await self._down_and_up(self.server.kill, self.server.start)
        if what is Break.SERVER_RESTART:
            await self.server.stop()
            await self.server.start()
            return ""
        self.faults = flipped(self.config, self.rng)
        await self.rig.set_faults(self.faults)
        return (
            f"to {self.faults.error_rate:.0%} errors, {self.faults.lost_answer_rate:.0%} lost "
            f"answers, {self.faults.latency_ms} ms"
        )

    async def _bad_deploy(self) -> str:
        """Roll a broken build out; once the rollout has ended, let its workers go."""
        kind = list(BadBuild)[len(self.rollouts) % len(BadBuild)]
        label = f"broken-{len(self.rollouts) + 1}"
        copy = await asyncio.to_thread(bad_build, kind, self.rig.log_dir / label)
        build = f"{label}-{await asyncio.to_thread(build_id_of, copy)}"
        command = (sys.executable, str(copy / "worker.py"))
        await self._when_up(functools.partial(self.pool.add_candidate, label, build, command))
        plan = RolloutPlan(
            deployment=DEFAULT_DEPLOYMENT_NAME,
            task_queue=self.pool.task_queue,
            candidate=build,
            baseline=build_id(self.pool.label),
            steps=BAD_ROLLOUT_STEPS,
            hold_s=5.0,
            hold_sagas=3,
            check_every_s=1.0,
        )
        rollout = await self._when_up(functools.partial(start_rollout, self.rig.client, plan))
        ended = await self._until_ended(rollout)
        if ended.phase is Phase.PROMOTED:
            await self._undo_promotion(plan)
        self.pool.leave_behind(label)
        self.rollouts.append(ended)
        live = (
            f"live {(ended.rolled_back_at - ended.live_since).total_seconds():.1f} s, "
            if ended.rolled_back_at and ended.live_since
            else ""
        )
        return (
            f"{kind} build {build}: {ended.phase}, {live}{ended.reached} saga(s) reached it, "
            f"{len(ended.recovered)} recovered"
        )

    async def _break_link(self, what: Break) -> str:
        """Break a link for a random while; heal it; time its sagas' recovery.

        Each kind of break takes the links in a random order, and a cut the ways to cut in
        another, so that four cuts cut every link, each a different way.
        """
        network = self.rig.network
        assert network is not None, "a link break needs the rig's network"
        link = next(self._links[what])
        lasts = self.rng.uniform(*self.config.link_fault_s)
        if what is Break.CUT:
            direction = next(self._cut_ways)
            if direction is None:
                network.take_down(link)
            else:
                network.cut(link, direction)
            harm = f"{link} {direction or 'set down'}"
        elif what is Break.LOSS:
            loss = self.rng.uniform(*LOSS_RANGE)
            network.degrade(link, loss=loss)
            harm = f"{link} losing {loss:.0%} of its packets"
        else:
            delay = self.rng.randint(*DELAY_MS_RANGE)
            network.degrade(link, latency_ms=delay, jitter_ms=delay // 4)
            harm = f"{link} delaying its packets {delay} ± {delay // 4} ms"
        try:
            await asyncio.sleep(lasts)  # the link stays broken: this is the harm, not a wait
            held = await held_sagas(self.rig.client, self.pool.task_queue)
        finally:
            network.heal(link)
        recovery = await until_moved_on(self.rig.client, held, time.monotonic())
        self.recoveries.append(recovery)
        return f"{harm} for {lasts:.1f} s; {recovery}"

    async def _when_up(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, again while another break has a part it needs down (back within seconds)."""
        async with asyncio.timeout(120):
            while True:
                try:
                    return await retry_transient(call)
                except StartFailure:
                    await asyncio.sleep(1.0)

    async def _until_ended(self, rollout: Rollout) -> RolloutProgress:
        """How the rollout ended; aborted if every order is placed before it has judged."""
        result = asyncio.ensure_future(retry_transient(rollout.result))
        placed = asyncio.ensure_future(self.all_placed.wait())
        await asyncio.wait({result, placed}, return_when=asyncio.FIRST_COMPLETED)
        placed.cancel()
        while not result.done():  # no new saga will come to judge it by: abort it
            try:
                await answer(self.rig.client, DEFAULT_DEPLOYMENT_NAME, "abort")
                break
            except StartFailure:  # its worker not answering yet, or it is rolling back already
                await asyncio.wait({result}, timeout=1.0)
        return await result

    async def _undo_promotion(self, plan: RolloutPlan) -> None:
        """A broken build was made current: new sagas back to the good one, its sagas moved."""
        client, queue = self.rig.client, plan.task_queue
        await rollback(client, plan.deployment, queue)
        source = WorkerDeploymentVersion(plan.deployment, plan.candidate)
        target = WorkerDeploymentVersion(plan.deployment, plan.baseline)
        await recover(client, source, target, queue)

    async def _down_and_up(
        self, kill: Callable[[], Awaitable[None]], start: Callable[[], Awaitable[None]]
    ) -> str:
        pause = self.rng.uniform(*DOWNTIME_S)
        await kill()
        await asyncio.sleep(pause)  # the part stays down: this is the harm, not a wait for it
        await start()
        return f"down {pause:.1f} s"


def flipped(config: ChaosConfig, rng: random.Random) -> FaultSettings:
    """New random fault levels, from none up to twice the configured ones."""
    error_rate = rng.uniform(0, min(2 * config.fault_rate, 0.5))
    return FaultSettings(
        error_rate=error_rate,
        lost_answer_rate=rng.uniform(0, min(2 * config.lost_answers, 1 - error_rate)),
        latency_ms=rng.randint(0, 2 * config.latency_ms),
    )


async def retry_waiting_sagas(rig: Rig, task_queue: str) -> set[str]:
    """Retry, as an operator would, the compensation each saga of `task_queue` waits on.

    Returns:
        The workflow ids of the sagas retried.
    """
    query = (
        f"{saga_query(SagaState.NEEDS_ATTENTION.value)} AND TaskQueue = '{task_queue}' "
        "AND ExecutionStatus = 'Running'"
    )

    async def waiting() -> list[str]:
        return [execution.id async for execution in rig.client.list_workflows(query)]

    retry = Resolution(action=OperatorAction.RETRY, reason="chaos: the faults stopped")
    retried = set()
    for workflow_id in await retry_transient(waiting):
        handle = rig.client.get_workflow_handle(workflow_id)
        # No longer waiting (visibility lags a moment behind): nothing to retry.
        with contextlib.suppress(WorkflowUpdateFailedError):
            await retry_transient(
                functools.partial(handle.execute_update, OrderSaga.resolve_compensation, retry)
            )
            retried.add(workflow_id)
    return retried


#: The command's option for each kind of harm, and its help.
BREAK_FLAGS = {
    Break.WORKER_KILL: ("--kills", "worker SIGKILLs"),
    Break.SERVICES_KILL: ("--service-kills", "SIGKILLs of the services' process"),
    Break.SERVER_KILL: ("--server-kills", "SIGKILLs of the Temporal server"),
    Break.SERVER_RESTART: ("--server-restarts", "graceful restarts of the Temporal server"),
    Break.FLIP: ("--flips", "changes of the fault levels"),
    Break.DEPLOY: ("--deploys", "new versions of the workers made current (PINNED sagas drain)"),
    Break.BAD_DEPLOY: ("--bad-deploys", "broken versions rolled out, to be caught and rolled back"),
    Break.CUT: ("--cuts", "links cut, one way or both, or set down (with --network)"),
    Break.LOSS: ("--losses", "links losing 10-30 %% of their packets (with --network)"),
    Break.DELAY: ("--delays", "links delaying packets 200-1000 ms, with jitter (with --network)"),
}


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `order-saga chaos` and its options."""
    parser = commands.add_parser(
        "chaos", help="run orders while killing workers, services and Temporal; then audit"
    )
    add_load_options(parser, orders=200)
    parser.set_defaults(fault_rate=0.1, latency_ms=20)
    loop = parser.add_mutually_exclusive_group()
    loop.add_argument(
        "--concurrency", type=positive_int, default=20, help="closed loop: orders in flight [20]"
    )
    loop.add_argument("--rate", type=positive_float, help="open loop: orders placed per second")
    defaults = ChaosConfig().breaks
    for what, (flag, help_text) in BREAK_FLAGS.items():
        default = (
            f"{NETWORK_DEFAULTS[what]} with --network" if what in LINK_BREAKS else defaults[what]
        )
        parser.add_argument(
            flag,
            dest=what.name.lower(),
            type=non_negative_int,
            default=None if what in LINK_BREAKS else defaults[what],
            help=f"{help_text} [{default}]",
        )
    parser.add_argument(
        "--network",
        action="store_true",
        help="run each part in a network namespace of its own and break the links between them "
        "(needs root, iproute2 and nftables)",
    )
    parser.add_argument(
        "--link-fault-s",
        nargs=2,
        type=positive_float,
        metavar=("SHORTEST", "LONGEST"),
        default=ChaosConfig.link_fault_s,
        help="how long a broken link stays broken, in seconds [5 120]",
    )
    parser.add_argument(
        "--lost-answers",
        type=fraction,
        default=ChaosConfig.lost_answers,
        help="share of calls whose effect commits and whose answer is lost",
    )
    parser.add_argument("--declined", type=fraction, default=0.1, help="share of declined cards")


async def run_command(args: argparse.Namespace) -> int:
    """Run `order-saga chaos`; exit 1 if something went wrong (`ChaosResult.ok`)."""
    console = Console(stderr=True)
    if args.network:
        require_tools()  # before anything else: in one line, what this machine lacks
    config = ChaosConfig(
        orders=args.orders,
        concurrency=args.concurrency,
        rate=args.rate,
        breaks=_breaks(args, console),
        fault_rate=args.fault_rate,
        lost_answers=args.lost_answers,
        latency_ms=args.latency_ms,
        workers=args.workers,
        mix=Mix(declined=args.declined, out_of_stock=0.05, unserved=0.1),
        seed=args.seed,
        link_fault_s=tuple(sorted(args.link_fault_s)),
    )
    check_faults(lambda: config.faults)
    console.print("Starting the stack…")
    async with embedded_rig_in(args.data_dir, "chaos", network=args.network) as rig:
        log_into(rig.log_dir)
        result = await chaos(rig, config, console)
    print(result.summary())
    return 0 if result.ok else 1


def _breaks(args: argparse.Namespace, console: Console) -> dict[Break, int]:
    """How many of each break the command line asks for (the links' only with `--network`).

    Raises:
        StartFailure: A link break was asked for without `--network`.
    """
    breaks = {what: getattr(args, what.name.lower()) for what in Break}
    for what in LINK_BREAKS:
        if breaks[what] and not args.network:
            raise StartFailure(f"{BREAK_FLAGS[what][0]} breaks links: add --network")
        if breaks[what] is None:
            breaks[what] = NETWORK_DEFAULTS[what] if args.network else 0
    if breaks[Break.DELAY] and not netem_available():
        console.print(f"{NO_NETEM}: the run makes no delays")
        breaks[Break.DELAY] = 0
    return breaks
