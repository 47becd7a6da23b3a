"""The demo: the whole stack on this machine, one order per saga path, a table of outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import WorkflowFailureError

from ordersaga.models import CardDetails, OrderForm, SagaStatus
from ordersaga.ops.stack import Stack, embedded_stack
from ordersaga.placing import DEMO_ORDER, start_saga, tokenize
from ordersaga.settings import DEFAULT_NAMESPACE, DEFAULT_UI_URL
from ordersaga.temporal import ui_link
from workflows import OrderSaga

APPROVED_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"


@dataclass(frozen=True)
class Scenario:
    """One demo order: what is special about it and what it shows."""

    name: str
    shows: str
    changes: dict[str, Any] = field(default_factory=dict)
    card: str = APPROVED_CARD


BOOK = {"sku": "SKU-BOOK", "quantity": 1, "unit_price": 1500}

SCENARIOS = [
    Scenario("happy", "every step succeeds"),
    Scenario(
        "two-items",
        "every step succeeds, two items",
        {"items": [BOOK, {"sku": "SKU-MUG", "quantity": 2, "unit_price": 899}]},
    ),
    Scenario(
        "sold-out",
        "Inventory refuses SKU-SOLDOUT",
        {"items": [{"sku": "SKU-SOLDOUT", "quantity": 1, "unit_price": 500}]},
    ),
    Scenario("declined", "Payment declines the test card", card=DECLINED_CARD),
    Scenario(
        "unserved",
        "Shipping refuses postal code 00000",
        {"shipping_address": {**DEMO_ORDER["shipping_address"], "postal_code": "00000"}},
    ),
    Scenario("blocked", "Order service rejects cust-blocked", {"customer_id": "cust-blocked"}),
]

#: Run last, alone: Payment loses its answer twice after charging, so the activity retries
#: (2 s, then 4 s) and the idempotency key keeps it to one charge.
FLAKY = Scenario("flaky-payment", "Payment loses 2 answers; retried, charged once")


async def run_scenario(stack: Stack, scenario: Scenario, order_id: str) -> SagaStatus:
    """Place the scenario's order and wait for its saga to end."""
    form = OrderForm.model_validate(
        {**DEMO_ORDER, "order_id": order_id, "items": [BOOK], **scenario.changes}
        | {"payment": {"card_number": scenario.card, "exp_month": 12, "exp_year": 2030}}
    )
    assert isinstance(form.payment, CardDetails)
    payment = await tokenize(stack.urls.payment, form.payment)
    handle = await start_saga(stack.client, form.with_payment(payment), stack.task_queue)
    with contextlib.suppress(WorkflowFailureError):  # the status query tells how it ended
        await handle.result()
    return await handle.query(OrderSaga.status)


def print_table(rows: list[tuple[str, Scenario, SagaStatus]]) -> None:
    """Order, final state, failed step and compensations run, one saga a line."""
    header = ("order", "shows", "final state", "failed step", "compensations run")
    lines = [
        (
            order_id,
            scenario.shows,
            status.state.value,
            status.failed_step.value if status.failed_step else "-",
            " → ".join(status.compensations_run) or "-",
        )
        for order_id, scenario, status in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    for line in [header, tuple("-" * w for w in widths), *lines]:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        print("  ".join(cells).rstrip())


async def demo(
    data_dir: Path, *, temporal_port: int, ui_port: int, services_port: int, stay: bool
) -> None:
    """Start the stack, run every scenario, print the outcomes, then wait for Ctrl-C."""
    run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    print(f"Starting Temporal (UI on :{ui_port}), the services (:{services_port}) and a worker…")
    async with embedded_stack(
        data_dir,
        temporal_port=temporal_port,
        ui_port=ui_port,
        services_port=services_port,
        task_queue="order-saga",
    ) as stack:
        order_ids = [f"demo-{run_id}-{scenario.name}" for scenario in SCENARIOS]
        print(f"Placing {len(SCENARIOS)} orders, one for each way a saga can go…")
        statuses = await asyncio.gather(
            *(run_scenario(stack, s, o) for s, o in zip(SCENARIOS, order_ids, strict=True))
        )
        rows = list(zip(order_ids, SCENARIOS, statuses, strict=True))

        print("Placing one more while Payment loses its answers (watch the retries)…")
        async with httpx.AsyncClient() as http:
            faults = {"error_rate": 0, "latency_ms": 0, "fail_next": 2, "fail_after_commit": True}
            (await http.put(f"{stack.urls.payment}/admin/faults", json=faults)).raise_for_status()
        flaky_id = f"demo-{run_id}-{FLAKY.name}"
        rows.append((flaky_id, FLAKY, await run_scenario(stack, FLAKY, flaky_id)))

        print()
        print_table(rows)
        ui_url = DEFAULT_UI_URL.replace("8233", str(ui_port))
        print(f"\nWeb UI: {ui_url}/namespaces/{DEFAULT_NAMESPACE}/workflows")
        print(f"  e.g. {ui_link(ui_url, DEFAULT_NAMESPACE, 'order-' + order_ids[0])}")
        print(f"Temporal at localhost:{temporal_port}, services at {stack.services_url}")
        if stay:
            print("Everything keeps running: try `python starter.py place …`. Ctrl-C stops it.")
            await wait_for_interrupt()


async def wait_for_interrupt() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
