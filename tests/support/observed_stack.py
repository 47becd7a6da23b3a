"""A worker and services with every observability output on, and a known mix of orders run on them.

The worker (`python worker.py`) serves metrics and writes spans and JSON log lines to files; the
services write their spans to a file; one confirmed order is placed by `starter.py`, writing its
spans too, so that its trace crosses all three processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from temporalio.client import Client, WorkflowFailureError

from domain.order import OrderRequest
from domain.saga import Withdrawal
from infra.sockets import free_port
from ops.stack import services_process, worker_process
from ordersaga.order_desk import start_saga
from tests.support.interruptions import caught_mid_shipment, slow_shipping
from tests.support.orders import DECLINED_TOKEN, SOLD_OUT_SKU, UNSERVED_POSTAL_CODE, make_order
from tests.support.starter_runner import STARTER, new_order_id
from workflows import OrderSaga

TASK_QUEUE = "observed"


@dataclass
class Mix:
    """The orders placed, by how they end, and the files the processes wrote."""

    confirmed: list[OrderRequest] = field(default_factory=list)
    declined: list[OrderRequest] = field(default_factory=list)
    unserved: list[OrderRequest] = field(default_factory=list)
    sold_out: list[OrderRequest] = field(default_factory=list)
    #: Caught while their shipment was being scheduled: one withdrawn, one cancelled.
    withdrawn: list[OrderRequest] = field(default_factory=list)
    cancelled: list[OrderRequest] = field(default_factory=list)
    #: The order `starter.py` placed (one of `confirmed`).
    traced_order_id: str = ""
    metrics_url: str = ""
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def all(self) -> list[OrderRequest]:
        return [
            *self.confirmed,
            *self.declined,
            *self.unserved,
            *self.sold_out,
            *self.withdrawn,
            *self.cancelled,
        ]

    def spans(self) -> list[dict[str, Any]]:
        return [
            json.loads(line)
            for name in ("starter_spans", "worker_spans", "services_spans")
            for line in self.files[name].read_text().splitlines()
        ]

    def worker_log(self) -> list[dict[str, Any]]:
        lines = self.files["worker_log"].read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


@asynccontextmanager
async def observed_mix(client: Client, address: str, tmp: Path) -> AsyncIterator[Mix]:
    """Start the services and a worker, place the mix, wait for every saga to end; yield it."""
    files = {
        name: tmp / f"{name.replace('_', '-')}.{'log' if name.endswith('log') else 'jsonl'}"
        for name in ("starter_spans", "worker_spans", "services_spans", "worker_log")
    }
    for path in files.values():
        path.touch()
    metrics_address = f"127.0.0.1:{free_port()}"
    async with AsyncExitStack() as stack:
        services_log = stack.enter_context((tmp / "services.log").open("ab"))
        # services_process passes on this process's environment, read when it spawns.
        with mock.patch.dict(os.environ, {"TRACES_FILE": str(files["services_spans"])}):
            services_url = await stack.enter_async_context(
                services_process(free_port(), tmp / "services", services_log)
            )
        worker_log = stack.enter_context(files["worker_log"].open("ab"))
        worker_env = {
            "METRICS_ADDRESS": metrics_address,
            "TRACES_FILE": str(files["worker_spans"]),
            "LOG_FORMAT": "json",
            # Debug: each activity's own `activity done` line, whose ids and trace are checked.
            "LOG_LEVEL": "debug",
            "DATA_DIR": str(tmp / "worker-data"),
        }
        await stack.enter_async_context(
            worker_process(
                address, TASK_QUEUE, services_url, worker_log, data_dir=tmp, env=worker_env
            )
        )
        mix = Mix(metrics_url=f"http://{metrics_address}/metrics", files=files)
        mix.confirmed = [make_order() for _ in range(6)]
        mix.declined = [
            make_order(payment={"token": DECLINED_TOKEN, "last4": "0002"}) for _ in range(2)
        ]
        unserved_address = make_order().shipping_address.model_copy(
            update={"postal_code": UNSERVED_POSTAL_CODE}
        )
        mix.unserved = [make_order(shipping_address=unserved_address.model_dump())]
        mix.sold_out = [make_order(items=[{"sku": SOLD_OUT_SKU, "quantity": 1, "unit_price": 100}])]
        mix.traced_order_id = new_order_id()
        starter = _place_with_starter(
            mix.traced_order_id,
            os.environ
            | {
                "TEMPORAL_ADDRESS": address,
                "SERVICES_URL": services_url,
                "TASK_QUEUE": TASK_QUEUE,
                "TRACES_FILE": str(files["starter_spans"]),
            },
        )
        await asyncio.gather(starter, *(_run_saga(client, order) for order in mix.all))
        mix.withdrawn, mix.cancelled = [make_order()], [make_order()]
        async with slow_shipping(services_url):
            withdrawn = await caught_mid_shipment(client, mix.withdrawn[0], TASK_QUEUE)
            await withdrawn.execute_update(OrderSaga.withdraw, Withdrawal())
            cancelled = await caught_mid_shipment(client, mix.cancelled[0], TASK_QUEUE)
            await cancelled.cancel()
            with suppress(WorkflowFailureError):
                await cancelled.result()
        # The starter's order, as the workflow saw it: one item, SKU-BOOK at 1500.
        mix.confirmed.append(
            make_order(
                order_id=mix.traced_order_id,
                items=[{"sku": "SKU-BOOK", "quantity": 1, "unit_price": 1500}],
            )
        )
        yield mix


async def _run_saga(client: Client, order: OrderRequest) -> None:
    handle = await start_saga(client, order, TASK_QUEUE)
    with suppress(WorkflowFailureError):  # the refusals are part of the mix
        await handle.result()


async def _place_with_starter(order_id: str, env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, STARTER, "place", "--order-id", order_id, "--item", "SKU-BOOK:1:1500",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
