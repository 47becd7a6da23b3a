"""`order-saga operator-drill`: an operator's bad day, measured.

On a dev server and an Order API of its own, in a temporary folder: `-n` sagas are left waiting
for an operator by an Inventory outage (`ops.outage`), then it times what the operator does
about them: `GET /attention` with the sagas' worker running and with it stopped (the median of
`--repeat` calls each), and one bulk retry once Inventory is back, until every saga has resumed.
It prints the figures; docs/operations.md quotes them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from infra.devserver import dev_server_in
from infra.logs import configure_logging
from infra.temporal import connect
from ops.outage import InventoryOutage, outage_worker, strand
from ops.stack import api_process
from ordersaga.api.auth import Tokens

TASK_QUEUE = "operator-drill"


@dataclass(frozen=True)
class DrillFigures:
    """What the drill measured, in seconds.

    Attributes:
        stranded: Sagas left waiting.
        list_with_worker: Median time of `GET /attention` (one page of them all), worker up.
        list_without_worker: The same with the sagas' worker stopped.
        bulk_answer: The bulk retry's own call, until every saga was answered.
        all_resumed: From the bulk retry to the last saga's release tried again.
    """

    stranded: int
    list_with_worker: float
    list_without_worker: float
    bulk_answer: float
    all_resumed: float

    def lines(self) -> list[str]:
        """The figures, one a line."""
        return [
            f"{self.stranded} sagas waiting for an operator",
            f"GET /attention, one page of them all, worker running: {self.list_with_worker:.3f} s",
            f"GET /attention, one page of them all, no worker: {self.list_without_worker:.3f} s",
            f"bulk retry (POST /attention/answers): {self.bulk_answer:.1f} s; every saga resumed "
            f"{self.all_resumed:.1f} s after it began",
        ]


async def drill(count: int, repeat: int, folder: Path) -> DrillFigures:
    """Strand `count` sagas and time the operator's views and bulk answer on them."""
    tokens = Tokens(shop=f"shop-{uuid.uuid4().hex}", operator=f"operator-{uuid.uuid4().hex}")
    async with dev_server_in(folder) as server:
        client = await connect(server.address, "default")
        outage = InventoryOutage()
        async with (
            api_process(server.address, TASK_QUEUE, tokens, folder / "api.log") as api,
            httpx.AsyncClient(
                base_url=api.url,
                headers={"Authorization": f"Bearer {tokens.operator}"},
                timeout=120,
            ) as operator,
        ):
            async with outage_worker(client, TASK_QUEUE, outage):
                await strand(client, TASK_QUEUE, count)
                with_worker = await _median_listing(operator, count, repeat)
            without_worker = await _median_listing(operator, count, repeat)
            outage.down = False
            async with outage_worker(client, TASK_QUEUE, outage):
                began = time.monotonic()
                answered = await operator.post(
                    "/attention/answers",
                    json={
                        "resolution": {"action": "retry"},
                        "filters": {"compensation": "release_inventory"},
                    },
                )
                answered.raise_for_status()
                bulk = time.monotonic() - began
                async with asyncio.timeout(600):
                    await outage.released(2 * count)
                resumed = time.monotonic() - began
    return DrillFigures(count, with_worker, without_worker, bulk, resumed)


async def _median_listing(operator: httpx.AsyncClient, count: int, repeat: int) -> float:
    """The median time of `GET /attention` listing all `count` sagas in one page."""
    times = []
    for _ in range(repeat):
        began = time.monotonic()
        page = await operator.get("/attention", params={"limit": 1000})
        times.append(time.monotonic() - began)
        page.raise_for_status()
        if page.json()["total"] != count:
            raise RuntimeError(f"GET /attention listed {page.json()['total']} of {count} sagas")
    return statistics.median(times)


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `order-saga operator-drill` and its options."""
    parser = commands.add_parser(
        "operator-drill",
        help="strand sagas on an outage and time the operator's views and bulk retry",
    )
    parser.add_argument("-n", type=int, default=1000, help="sagas to strand [default %(default)s]")
    parser.add_argument(
        "--repeat", type=int, default=5, help="calls of each listing timed [default %(default)s]"
    )


async def run_command(args: argparse.Namespace) -> int:
    """Run `order-saga operator-drill` and print its figures."""
    with (
        tempfile.TemporaryDirectory(prefix="operator-drill-") as folder,
        (Path(folder) / "worker.log").open("w") as worker_log,
    ):
        # The stranded sagas' worker runs in this process: its lines go to its log.
        configure_logging(logging.INFO, json=True, stream=worker_log)
        figures = await drill(args.n, args.repeat, Path(folder))
    print("\n".join(figures.lines()))
    return 0
