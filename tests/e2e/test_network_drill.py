"""The network drill: each link of the stack cut while sagas run, on real links.

Every part runs in a network namespace of its own (`ops.network`), and the kernel breaks the
links between them: nftables drops a link's packets one way or both, `ip link set down` takes
it away, a rule drops a share of its packets, netem delays them (where the kernel has it).
Each cut is shown to stop its traffic (the packets counted at the receiving end stay still
while the dropping rule counts the attempts) and to hold the sagas behind it, never to corrupt
them: after the heal every saga confirms and the audit finds nothing wrong.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import WorkflowHandle

from domain.ids import idempotency_key, workflow_id_for
from domain.order import OrderRequest
from domain.saga import OrderResult
from ops.audit import audit
from ops.chaos import CHAOS_POLICY
from ops.network import NO_NETEM, Direction, Link, Network, Part, Traffic, netem_available
from ops.rig import TEMPORAL_PORT, Rig, WorkerPool, network_api, network_rig
from ops.workload import Kind, api_client, make_order
from ordersaga.api.auth import Tokens
from ordersaga.order_desk import DESK_DEADLINE_S, start_saga
from services.faults import FaultSettings
from workflows import OrderSaga

#: How long each cut lasts: longer than the orders' activity timeout (`CHAOS_POLICY`, 2 s).
CUT_S = 5.0

#: Sagas started while a link is cut.
SAGAS = 3

#: How long the Order API's link stays cut while it is read.
LONG_CUT_S = 60.0

#: Within how long the sagas a cut held must all have ended once it heals (the target).
RECOVERY_S = 60.0

Saga = WorkflowHandle[OrderSaga, OrderResult]


@pytest.fixture(scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    async with network_rig(tmp_path_factory.mktemp("network")) as rig:
        yield rig


@pytest.fixture(scope="module")
def network(rig: Rig) -> Network:
    assert rig.network is not None
    return rig.network


@pytest.fixture(scope="module")
async def pool(rig: Rig) -> AsyncIterator[WorkerPool]:
    async with WorkerPool(rig, "network-drill").running(1) as pool:
        yield pool


def orders(count: int) -> list[OrderRequest]:
    stamp = time.time_ns()
    return [make_order(f"net-{stamp}-{i}", Kind.HAPPY, CHAOS_POLICY) for i in range(count)]


async def until(condition: Callable[[], Awaitable[bool]], within_s: float = 30.0) -> None:
    async with asyncio.timeout(within_s):
        while not await condition():
            await asyncio.sleep(0.1)


async def dropped_more(network: Network, link: Link, than: Traffic) -> None:
    """Return once `link`'s cut has dropped a packet more than `than` counted: it was tried."""

    async def tried() -> bool:
        return network.traffic(link).dropped > than.dropped

    await until(tried)


async def completed_activities(saga: Saga) -> int:
    history = await saga.fetch_history()
    return sum(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED for e in history.events)


CUTS = [
    pytest.param(Link.WORKER_TEMPORAL, Direction.BOTH, id="worker-temporal-both-ways"),
    pytest.param(Link.WORKER_TEMPORAL, None, id="worker-temporal-link-down"),
    pytest.param(Link.WORKER_SERVICES, Direction.REQUESTS, id="worker-services-requests-lost"),
    pytest.param(Link.WORKER_SERVICES, Direction.BOTH, id="worker-services-both-ways"),
]


@pytest.mark.parametrize(("link", "direction"), CUTS)
async def test_a_cut_link_stops_its_traffic_and_holds_its_sagas_until_it_heals(
    rig: Rig, network: Network, pool: WorkerPool, link: Link, direction: Direction | None
) -> None:
    if direction is None:
        network.take_down(link)
    else:
        network.cut(link, direction)
    try:
        cut = network.traffic(link)
        sagas = [await start_saga(rig.client, order, pool.task_queue) for order in orders(SAGAS)]
        if direction is not None:
            await dropped_more(network, link, cut)
        await asyncio.sleep(CUT_S)  # the cut lasts: this is the harm, not a wait for it
        during = network.traffic(link)
        progress = [await completed_activities(saga) for saga in sagas]
        running = [(await saga.describe()).close_time is None for saga in sagas]
    finally:
        network.heal(link)
    healed = time.monotonic()
    async with asyncio.timeout(RECOVERY_S):
        results = [await saga.result() for saga in sagas]
    recovered_s = time.monotonic() - healed

    if direction in (Direction.BOTH, Direction.REQUESTS, None):
        assert during.requests == cut.requests
    if direction in (Direction.BOTH, None):
        assert during.answers == cut.answers
    assert all(running), "a saga ended while its link was cut"
    assert progress == [0] * SAGAS, "a saga completed a step its link could not carry"
    assert {result.state for result in results} == {"OrderConfirmed"}
    print(f"{link} {direction or 'down'}: the held sagas ended {recovered_s:.1f} s after the heal")


async def test_a_start_across_a_cut_starter_link_waits_for_the_heal_and_starts_once(
    rig: Rig, network: Network, pool: WorkerPool
) -> None:
    [order] = orders(1)
    its_saga = f"WorkflowId = '{workflow_id_for(order.order_id)}'"
    network.cut(Link.STARTER_TEMPORAL)
    try:
        cut = network.traffic(Link.STARTER_TEMPORAL)
        starting = asyncio.create_task(start_saga(rig.places_with, order, pool.task_queue))
        await dropped_more(network, Link.STARTER_TEMPORAL, cut)
        await asyncio.sleep(CUT_S)  # the cut lasts: this is the harm, not a wait for it
        during = network.traffic(Link.STARTER_TEMPORAL)
        started_during_cut = starting.done()
        known_during_cut = await rig.client.count_workflows(its_saga)
    finally:
        network.heal(Link.STARTER_TEMPORAL)
    async with asyncio.timeout(RECOVERY_S):
        saga = await starting
        result = await saga.result()

    assert (during.requests, during.answers) == (cut.requests, cut.answers)
    assert not started_during_cut
    assert known_during_cut.count == 0
    assert result.state == "OrderConfirmed"
    found = await rig.client.count_workflows(its_saga)
    assert found.count == 1


async def test_an_answer_lost_for_longer_than_the_timeout_is_retried_under_its_key_once(
    rig: Rig, network: Network, pool: WorkerPool
) -> None:
    assert rig.services_dir is not None
    [order] = orders(1)
    await rig.set_faults(FaultSettings(latency_ms=1000))  # the call is in the service a while
    try:
        saga = await start_saga(rig.client, order, pool.task_queue)

        async def in_the_service() -> bool:
            pending = (await saga.describe()).raw_description.pending_activities
            started = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            return any(activity.state == started for activity in pending)

        await until(in_the_service)
        network.cut(Link.WORKER_SERVICES, Direction.ANSWERS)
        cut = network.traffic(Link.WORKER_SERVICES)
        await asyncio.sleep(CUT_S)  # longer than the activity's 2 s timeout
        during = network.traffic(Link.WORKER_SERVICES)
    finally:
        network.heal(Link.WORKER_SERVICES)
        await rig.set_faults()
    result = await saga.result()
    history = await saga.fetch_history()
    report = await audit(rig.client, rig.services_dir, allow_running=True)

    key = idempotency_key(saga.id, "reserve_inventory")
    effects = [
        json.loads(line)
        for line in (rig.log_dir / "services.log").read_text().splitlines()
        if line.startswith("{") and f'"{key}"' in line and '"event": "effect"' in line
    ]
    attempts = [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.HasField("activity_task_started_event_attributes")
    ]
    assert during.answers == cut.answers and during.dropped > cut.dropped
    assert result.state == "OrderConfirmed"
    assert next(effect["replayed"] for effect in effects) is False
    assert sum(not effect["replayed"] for effect in effects) == 1  # one effect ...
    assert sum(effect["replayed"] for effect in effects) >= 1  # ... its answer replayed
    assert attempts[0] >= 2  # the first step's completed attempt was a retry
    assert report.violations == [], report.summary()


async def test_the_api_answers_503_in_bounded_time_while_temporal_is_unreachable(
    rig: Rig, network: Network, pool: WorkerPool
) -> None:
    [order] = orders(1)
    await (await start_saga(rig.client, order, pool.task_queue)).result()
    tokens = Tokens(shop=f"shop-{uuid.uuid4().hex}", operator=f"operator-{uuid.uuid4().hex}")
    async with (
        network_api(rig, pool.task_queue, tokens) as api,
        api_client(api.url, tokens.operator) as http,
    ):
        before = await http.get(f"/orders/{order.order_id}")
        network.cut(Link.API_TEMPORAL)
        cut_at = time.monotonic()
        try:
            cut = network.traffic(Link.API_TEMPORAL)
            answers = []
            paths = itertools.cycle((f"/orders/{order.order_id}", "/orders", "/attention"))
            # Past the client's keepalive (about 45 s), when it gives the connection up and
            # makes a new one across the cut.
            while time.monotonic() - cut_at < LONG_CUT_S:
                asked, path = time.monotonic(), next(paths)
                answer = await http.get(path)
                answers.append((path, answer.status_code, time.monotonic() - asked))
            during = network.traffic(Link.API_TEMPORAL)
        finally:
            network.heal(Link.API_TEMPORAL)

        async def answers_again() -> bool:
            return (await http.get(f"/orders/{order.order_id}")).status_code == 200

        await until(answers_again, RECOVERY_S)

    assert before.status_code == 200
    assert (during.requests, during.answers) == (cut.requests, cut.answers)
    assert during.dropped > cut.dropped
    assert [(path, status) for path, status, _ in answers] == [
        (path, 503) for path, _, _ in answers
    ]
    assert all(took <= DESK_DEADLINE_S + 1 for _, _, took in answers), answers


async def test_a_lossy_link_drops_packets_and_its_sagas_still_confirm(
    rig: Rig, network: Network, pool: WorkerPool
) -> None:
    network.degrade(Link.WORKER_SERVICES, loss=0.3)
    try:
        before = network.traffic(Link.WORKER_SERVICES)
        sagas = [await start_saga(rig.client, order, pool.task_queue) for order in orders(SAGAS)]
        async with asyncio.timeout(RECOVERY_S):
            results = [await saga.result() for saga in sagas]
        during = network.traffic(Link.WORKER_SERVICES)
    finally:
        network.heal(Link.WORKER_SERVICES)

    assert during.dropped > before.dropped
    assert during.requests > before.requests and during.answers > before.answers
    assert {result.state for result in results} == {"OrderConfirmed"}


@pytest.mark.skipif(not netem_available(), reason=NO_NETEM)
def test_a_delayed_link_adds_its_latency_to_each_round_trip(network: Network) -> None:
    probe = (
        "import socket, sys, time\n"
        "began = time.monotonic()\n"
        "socket.create_connection((sys.argv[1], int(sys.argv[2])), 10).close()\n"
        "print(time.monotonic() - began)\n"
    )
    host, port = network.address(Link.WORKER_TEMPORAL), str(TEMPORAL_PORT)

    def connect_s() -> float:
        ran = subprocess.run(
            [*network.launcher(Part.WORKER), sys.executable, "-c", probe, host, port],
            capture_output=True,
            text=True,
            check=True,
        )
        return float(ran.stdout)

    quick = connect_s()
    network.degrade(Link.WORKER_TEMPORAL, latency_ms=300)
    try:
        slow = connect_s()
    finally:
        network.heal(Link.WORKER_TEMPORAL)

    assert quick < 0.1
    assert slow >= 0.6  # a connection takes a round trip: 300 ms each way
