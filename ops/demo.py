"""The demo: the whole stack on this machine, one order per saga path, a table of outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from rich.console import Console
from temporalio.client import WorkflowFailureError

from domain.ids import workflow_id_for
from domain.order import CardDetails, OrderForm
from domain.saga import SagaStatus
from infra.codec import codec_from_settings
from infra.codec_server import CODEC_SERVER, create_codec_app, ensure_token_file
from infra.keyring import Keyring, ensure_key_file
from infra.serving import serving
from infra.settings import (
    DEFAULT_NAMESPACE,
    DEFAULT_UI_URL,
    ENV_FILE_VARIABLE,
    Settings,
    env_file,
)
from infra.sockets import ensure_free
from infra.temporal import ui_link
from ops.dashboard import frame
from ops.stack import Stack, api_process, embedded_stack
from ordersaga.api.auth import Tokens
from ordersaga.api.server import ORDER_API
from ordersaga.consumers.monitoring import MonitoringStore
from ordersaga.consumers.notifications import NotificationStore
from ordersaga.consumers.runner import consume
from ordersaga.order_desk import DEMO_ORDER, start_saga, tokenize
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
    payment = await tokenize(stack.urls["payment"], form.payment)
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
            status.state,
            status.failed_step or "-",
            " → ".join(status.compensations_run) or "-",
        )
        for order_id, scenario, status in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    for line in [header, tuple("-" * w for w in widths), *lines]:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        print("  ".join(cells).rstrip())


def ensure_ports_free(settings: Settings) -> None:
    """Refuse to start beside another stack: every port the demo serves on must be free.

    Checked before the demo opens its logs, so that a second demo writes nothing into the
    files of the one already running.

    Raises:
        PortInUseError: Naming the port, what it is for and its setting.
    """
    for port, what in (
        (settings.temporal_port, "Temporal frontend, TEMPORAL_PORT"),
        (settings.ui_port, "Temporal Web UI, UI_PORT"),
        (settings.services_port, "stand-in services, SERVICES_PORT"),
        (settings.codec_server_port, CODEC_SERVER),
        (settings.api_port, ORDER_API),
    ):
        ensure_free("127.0.0.1", port, f"{what}; is another order-saga demo running?")


async def demo(settings: Settings, *, stay: bool) -> None:
    """Start the stack, run every scenario, print the outcomes, then wait for Ctrl-C.

    Payloads are encrypted with the configured keys, or with a key made for the demo in the
    data folder; the Web UI shows them through a codec server on `codec_server_port`.
    """
    data_dir, ui_port = settings.data_dir, settings.ui_port
    earlier_run = (data_dir / "temporal.db").exists()
    data_dir.mkdir(parents=True, exist_ok=True)
    if Keyring.from_settings(settings) is None:
        key_file = ensure_key_file(data_dir / "codec-keys")
        settings = settings.model_copy(update={"codec_key_file": key_file})
    token = settings.codec_server_token or SecretStr(ensure_token_file(data_dir / "codec-token"))
    api_tokens = Tokens(
        shop=_secret(settings.api_shop_token) or ensure_token_file(data_dir / "api-shop-token"),
        operator=_secret(settings.api_operator_token)
        or ensure_token_file(data_dir / "api-operator-token"),
    )
    codec = codec_from_settings(settings)
    assert codec is not None
    run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    print(
        f"Starting Temporal (UI on :{ui_port}), the services (:{settings.services_port}), "
        f"the codec server (:{settings.codec_server_port}), the Order API (:{settings.api_port}) "
        "and a worker…"
    )
    if earlier_run:
        print(
            f"Adding to the last run in {data_dir}/: its orders and figures stay in what follows "
            f"(delete {data_dir}/ to start clean)."
        )
    else:
        print(f"Starting clean in {data_dir}/.")
    app = create_codec_app(codec, token.get_secret_value(), [f"http://localhost:{ui_port}"])
    async with (
        serving(app, "127.0.0.1", settings.codec_server_port, CODEC_SERVER) as codec_url,
        embedded_stack(
            data_dir,
            temporal_port=settings.temporal_port,
            ui_port=ui_port,
            services_port=settings.services_port,
            task_queue="order-saga",
            settings=settings,
            # The dev server's UI has no login to pass a token from: the token goes in the path.
            ui_codec_endpoint=f"{codec_url}/{token.get_secret_value()}",
        ) as stack,
        api_process(
            stack.client.service_client.config.target_host,
            stack.task_queue,
            api_tokens,
            data_dir / "api.log",
            port=settings.api_port,
            settings=_codec_keys_of(settings),
        ) as api,
    ):
        api_url = api.url
        order_ids = [f"demo-{run_id}-{scenario.name}" for scenario in SCENARIOS]
        print(f"Placing {len(SCENARIOS)} orders, one for each way a saga can go…")
        statuses = await asyncio.gather(
            *(run_scenario(stack, s, o) for s, o in zip(SCENARIOS, order_ids, strict=True))
        )
        rows = list(zip(order_ids, SCENARIOS, statuses, strict=True))

        print("Placing one more while Payment loses its answers (watch the retries)…")
        async with httpx.AsyncClient() as http:
            faults = {"error_rate": 0, "latency_ms": 0, "fail_next": 2, "fail_after_commit": True}
            (
                await http.put(f"{stack.urls['payment']}/admin/faults", json=faults)
            ).raise_for_status()
        flaky_id = f"demo-{run_id}-{FLAKY.name}"
        rows.append((flaky_id, FLAKY, await run_scenario(stack, FLAKY, flaky_id)))

        # The monitoring and notification consumers catch up on the events, and keep following.
        retention = settings.data_retention
        await consume(stack.event_bus_url, data_dir, once=True, retention=retention)
        following = asyncio.create_task(
            consume(stack.event_bus_url, data_dir, once=False, retention=retention)
        )
        print()
        print_table(rows)
        Console().print(frame(MonitoringStore.in_folder(data_dir), timedelta(hours=1)))
        notes = NotificationStore.in_folder(data_dir).notifications()
        print(f"Customer messages ({len(notes)}, in {data_dir / 'notifications.db'}), e.g.:")
        for note in notes[:2]:
            print(f"  {note.order_id}: {note.message}")
        ui_url = DEFAULT_UI_URL.replace("8233", str(ui_port))
        print(f"\nWeb UI: {ui_url}/namespaces/{DEFAULT_NAMESPACE}/workflows")
        print(f"  e.g. {ui_link(ui_url, DEFAULT_NAMESPACE, workflow_id_for(order_ids[0]))}")
        print(f"Temporal at localhost:{settings.temporal_port}, services at {stack.services_url}")
        print(
            f"Order API: {api_url} (bearer tokens in {data_dir / 'api-shop-token'} "
            f"and {data_dir / 'api-operator-token'})"
        )
        print(f"  checkout page: {api_url}/checkout#token={api_tokens.shop}")
        print(f"  operator page: {api_url}/operator#token={api_tokens.operator}")
        print(
            f"Payloads are encrypted (keys: {settings.codec_key_file}); the UI decodes them "
            f"through {codec_url} (bearer token in {data_dir / 'codec-token'})."
        )
        if stay:
            shared = data_dir / SETTINGS_FILE_NAME
            write_settings_file(shared, settings, stack.services_url, codec_url, token)
            print("Everything keeps running: try `python starter.py place …`. Ctrl-C stops it.")
            print(f"  Commands run here read the demo's keys and addresses from {shared};")
            if shared.resolve() != (env_file() or shared).resolve():
                print(f"  elsewhere, export {ENV_FILE_VARIABLE}={shared.resolve()}")
            print(f"  the temporal CLI decodes payloads once you run: set -a; . {shared}; set +a")
            print(f"Live figures: order-saga dashboard --data-dir {data_dir}")
            try:
                await wait_for_interrupt()
            finally:
                shared.unlink(missing_ok=True)
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following


#: The settings file the demo writes in its data folder while it runs.
SETTINGS_FILE_NAME = "order-saga.env"


def write_settings_file(
    path: Path, settings: Settings, services_url: str, codec_url: str, token: SecretStr
) -> None:
    """The demo's keys and addresses, as `KEY=value` lines that our commands and a shell read.

    `TEMPORAL_CODEC_*` are the `temporal` CLI's own variables: with them in the environment,
    `temporal workflow show`, `query` and `result` print payloads decoded.
    """
    assert settings.codec_key_file is not None  # the demo always encrypts
    lines = {
        "TEMPORAL_ADDRESS": f"localhost:{settings.temporal_port}",
        "SERVICES_URL": services_url,
        "CODEC_KEY_FILE": str(settings.codec_key_file.resolve()),
        "TEMPORAL_CODEC_ENDPOINT": codec_url,
        "TEMPORAL_CODEC_AUTH": f"Bearer {token.get_secret_value()}",
    }
    text = "# Written by `order-saga demo` while it runs; removed when it stops.\n"
    text += "".join(f'{name}="{value}"\n' for name, value in lines.items())
    path.touch(mode=0o600)
    path.write_text(text)


async def wait_for_interrupt() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value else None


def _codec_keys_of(settings: Settings) -> dict[str, str]:
    """The key file a process of the demo's needs to read its payloads, as its environment."""
    return (
        {"CODEC_KEY_FILE": str(key_file.resolve())} if (key_file := settings.codec_key_file) else {}
    )
