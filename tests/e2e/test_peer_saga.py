"""The peer saga `order-saga bench` measures against is a correct saga on the real services."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from temporalio.api.enums.v1 import EventType, VersioningBehavior
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import Worker

from domain.policy import SagaPolicy
from infra.devserver import DevServer
from ops.bench import PEER_COMMAND
from ops.stack import worker_process
from ops.workload import Kind, make_order, peer_order, peer_workflow_id
from peer.__main__ import VERSION
from peer.activities import ServiceCalls
from peer.saga import PeerOrderSaga
from tests.support.service_state import Services
from tests.support.starter_runner import run_python


@pytest.fixture(scope="module")
async def plain_client(dev_server: DevServer) -> Client:
    """A client with the SDK's default data converter, as the peer's workers and bench use."""
    return await Client.connect(dev_server.address)


@pytest.fixture
async def peer_queue(plain_client: Client, services_url: str) -> AsyncIterator[str]:
    """A worker of the peer saga, as `python -m peer` makes it, on a queue of its own."""
    task_queue = f"peer-{uuid.uuid4().hex[:8]}"
    async with aiohttp.ClientSession() as http:
        calls = ServiceCalls(http, services_url)
        async with Worker(
            plain_client,
            task_queue=task_queue,
            workflows=[PeerOrderSaga],
            activities=calls.activities(),
        ):
            yield task_queue


async def start_peer(
    client: Client, task_queue: str, kind: Kind
) -> WorkflowHandle[PeerOrderSaga, str]:
    order = make_order(f"peer-{uuid.uuid4().hex[:10]}", kind, SagaPolicy())
    return await client.start_workflow(
        PeerOrderSaga.run, peer_order(order), id=peer_workflow_id(order), task_queue=task_queue
    )


async def scheduled(handle: WorkflowHandle[PeerOrderSaga, str]) -> list[str]:
    history = await handle.fetch_history()
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def test_the_peer_confirms_an_order_with_every_effect_in_force(
    plain_client: Client, peer_queue: str, services: Services
) -> None:
    handle = await start_peer(plain_client, peer_queue, Kind.HAPPY)

    confirmation = await handle.result()

    effects = await services.effects(handle.id.removeprefix("peer-"))
    assert effects.record is not None
    assert (effects.record["confirmation_id"], effects.record["status"]) == (
        confirmation,
        "confirmed",
    )
    assert len(effects.live_reservations) == 1
    assert effects.net_charged == 1500 + 2 * 899
    assert len(effects.live_shipments) == 1
    assert await scheduled(handle) == [
        "reserve_inventory",
        "charge_payment",
        "schedule_shipment",
        "confirm_order",
    ]


async def test_the_peer_compensates_in_reverse_when_shipping_refuses(
    plain_client: Client, peer_queue: str, services: Services
) -> None:
    handle = await start_peer(plain_client, peer_queue, Kind.UNSERVED)

    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()

    activity_failure = failure.value.cause
    assert isinstance(activity_failure, ActivityError)
    cause = activity_failure.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "ShippingUnavailable"
    assert await scheduled(handle) == [
        "reserve_inventory",
        "charge_payment",
        "schedule_shipment",
        "cancel_shipment",
        "refund_payment",
        "release_inventory",
    ]
    effects = await services.effects(handle.id.removeprefix("peer-"))
    assert effects.live_reservations == []
    assert effects.net_charged == 0
    assert effects.live_shipments == []


async def test_the_peer_worker_connects_as_temporals_settings_say(dev_server: DevServer) -> None:
    # TLS asked for, as for a remote server, against the dev server's plain-text port: a worker
    # that honours the setting cannot connect; one that ignored it would poll on.
    env = dict(os.environ, TEMPORAL_ADDRESS=dev_server.address, TEMPORAL_TLS="true")
    env |= {"TASK_QUEUE": f"peer-{uuid.uuid4().hex[:8]}", "SERVICES_URL": "http://127.0.0.1:9"}

    run = await run_python(env, "-m", "peer")

    assert run.code != 0
    assert "Failed client connect" in run.err


async def test_the_peer_worker_pins_its_sagas_to_its_version(
    dev_server: DevServer, services_url: str, plain_client: Client, tmp_path: Path
) -> None:
    # As bench runs it: `python -m peer` in a process of its own, its version made current.
    task_queue = f"peer-{uuid.uuid4().hex[:8]}"
    with (tmp_path / "peer.log").open("ab") as log:
        async with worker_process(
            dev_server.address, task_queue, services_url, log,
            data_dir=tmp_path, command=PEER_COMMAND,
        ):  # fmt: skip
            handle = await start_peer(plain_client, task_queue, Kind.HAPPY)
            await handle.result()
            described = await handle.describe()

    versioning = described.raw_description.workflow_execution_info.versioning_info
    assert versioning.behavior == VersioningBehavior.VERSIONING_BEHAVIOR_PINNED
    assert versioning.deployment_version.deployment_name == VERSION.deployment_name
    assert versioning.deployment_version.build_id == VERSION.build_id
