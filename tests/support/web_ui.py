"""The Temporal Web UI in a real browser, over sagas that end in different ways.

Playwright drives Debian's chromium (`apt-get install chromium`; Playwright's own browser
download is not used). The stack is the demo's: the dev server with its Web UI, the codec
server the UI decodes payloads through, the services and a worker, on free ports in a folder of
its own. `tests/e2e/test_web_ui.py` checks what the pages show;
`python -m tests.support.screenshots` takes the docs' pictures of the same pages.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from playwright.async_api import Page, async_playwright
from pydantic import SecretStr
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter

from domain.ids import workflow_id_for
from domain.order import OrderRequest
from domain.saga import SagaState, Withdrawal
from infra.codec import codec_from_settings
from infra.codec_server import create_codec_app
from infra.keyring import ensure_key_file
from infra.serving import serving
from infra.settings import DEFAULT_NAMESPACE, Settings
from infra.sockets import free_port
from infra.temporal import ui_link
from ops.demo import SCENARIOS, run_scenario
from ops.stack import Stack, embedded_stack
from ordersaga.order_desk import DEMO_ORDER
from tests.support.interruptions import caught_mid_shipment, slow_shipping
from workflows import OrderSaga
from workflows.search_attributes import ORDER_STATUS

#: Debian's chromium, if installed.
CHROMIUM = shutil.which("chromium")

#: Headless, and quiet on a machine with no network beyond localhost.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: The order placed for the withdrawn and the refused sagas, paid with a test token.
BOOK = {"sku": "SKU-BOOK", "quantity": 1, "unit_price": 1500}
TOKEN = {"token": "tok_visa", "last4": "4242"}


@dataclass(frozen=True)
class UiStack:
    """The demo's stack with its Web UI.

    Attributes:
        stack: The dev server's client, the services and the worker.
        ui_url: The Web UI's base URL.
    """

    stack: Stack
    ui_url: str

    def page_of(self, workflow_id: str) -> str:
        """The Web UI page of one workflow."""
        return ui_link(self.ui_url, DEFAULT_NAMESPACE, workflow_id)


@asynccontextmanager
async def ui_stack(data_dir: Path) -> AsyncIterator[UiStack]:
    """The demo's stack, its Web UI decoding payloads through a codec server, in `data_dir`."""
    settings = Settings(codec_key_file=ensure_key_file(data_dir / "codec-keys"))
    codec = codec_from_settings(settings)
    assert codec is not None
    ui_port = free_port()
    token = SecretStr("web-ui-test-token")
    app = create_codec_app(codec, token.get_secret_value(), [f"http://localhost:{ui_port}"])
    async with (
        serving(app, "127.0.0.1", free_port(), "codec server") as codec_url,
        embedded_stack(
            data_dir,
            temporal_port=free_port(),
            ui_port=ui_port,
            services_port=free_port(),
            task_queue="order-saga",
            settings=settings,
            ui_codec_endpoint=f"{codec_url}/{token.get_secret_value()}",
        ) as stack,
    ):
        yield UiStack(stack, f"http://localhost:{ui_port}")


@dataclass(frozen=True)
class Outcomes:
    """Workflow ids of three sagas that ended three ways."""

    declined: str
    withdrawn: str
    refused: str


async def place_outcomes(ui: UiStack, tag: str) -> Outcomes:
    """A declined card (Aborted), a withdrawal mid-shipment (Withdrawn), and an order sent
    unencrypted, as the `temporal` CLI without its codec flags sends it (Refused)."""
    stack = ui.stack
    declined = f"{tag}-declined"
    [scenario] = [s for s in SCENARIOS if s.name == "declined"]
    await run_scenario(stack, scenario, declined)
    withdrawn = await _withdrawn_mid_shipment(stack, f"{tag}-withdrawn")
    refused = _order(f"{tag}-refused")
    # With the search attributes the docs' CLI command gives, and no codec.
    plain = await Client.connect(
        stack.client.service_client.config.target_host,
        data_converter=pydantic_data_converter,
    )
    handle = await plain.start_workflow(
        "OrderSaga",
        refused.model_dump(mode="json"),
        id=workflow_id_for(refused.order_id),
        task_queue=stack.task_queue,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(ORDER_STATUS, SagaState.STARTED.value)]
        ),
    )
    with contextlib.suppress(WorkflowFailureError):
        await stack.client.get_workflow_handle(handle.id).result()
    return Outcomes(workflow_id_for(declined), withdrawn, handle.id)


def _order(order_id: str) -> OrderRequest:
    return OrderRequest.model_validate(
        DEMO_ORDER | {"order_id": order_id, "items": [BOOK], "payment": TOKEN}
    )


async def _withdrawn_mid_shipment(stack: Stack, order_id: str) -> str:
    """An order withdrawn by its customer while Shipping takes its time; its workflow id."""
    async with slow_shipping(stack.services_url):
        handle = await caught_mid_shipment(stack.client, _order(order_id), stack.task_queue)
        status = await handle.execute_update(OrderSaga.withdraw, Withdrawal())
    assert status.state == SagaState.WITHDRAWN, status
    return handle.id


@asynccontextmanager
async def browser_page() -> AsyncIterator[Page]:
    """A page of headless chromium, wide enough for the workflow list's columns."""
    assert CHROMIUM, "chromium is not installed (apt-get install chromium)"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield await browser.new_page(viewport={"width": 1400, "height": 900})
        finally:
            await browser.close()


async def open_workflow(page: Page, ui: UiStack, workflow_id: str) -> None:
    """The workflow's page, once its result (or failure) is shown."""
    await page.goto(ui.page_of(workflow_id))
    await page.get_by_text("Result", exact=True).first.wait_for()


async def open_current_details(page: Page) -> str:
    """The open workflow's User Metadata tab, once its current details are shown; their text.

    The UI renders them (Markdown) in a frame of their own.
    """
    await page.get_by_text("User Metadata", exact=True).first.click()
    details = page.frame_locator("iframe[src*='/render']").locator("body")
    await details.get_by_text("Done:").first.wait_for()
    return await details.inner_text()


async def open_list_with_columns(page: Page, ui: UiStack, *columns: str) -> str:
    """The saga list with the search attributes `columns` added; the table's text."""
    await page.goto(f"{ui.ui_url}/namespaces/{DEFAULT_NAMESPACE}/workflows")
    await page.get_by_test_id("workflows-summary-table-configuration-button").click()
    for column in ("Run ID", "Type", "End"):  # room for the saga's own columns
        await page.get_by_label(f"Remove {column} column").click()
    for column in columns:
        await page.get_by_label(f"Add {column} column").click()
    drawer = page.locator("aside, [role=dialog]").filter(has_text="Configure Workflows Table")
    await drawer.get_by_role("button", name="Close").click()
    await drawer.wait_for(state="hidden")
    table = page.locator("table").first
    await table.get_by_text(columns[0], exact=True).wait_for()
    return await table.inner_text()


async def place_at_checkout(page: Page, api_url: str, token: str, card: str, order_id: str) -> str:
    """Place the checkout page's order with `card` (its label) and watch its saga to the end.

    Returns:
        The state the page shows at the end.
    """
    await page.goto(f"{api_url}/checkout#token={token}")
    await page.get_by_label("Order id").fill(order_id)
    await page.get_by_label("Card").select_option(label=card)
    await page.get_by_role("button", name="Place order").click()
    state = page.locator("#state")
    await state.and_(page.locator(".ended-ok, .ended-bad")).wait_for()
    return await state.inner_text()


async def retry_from_operator_page(page: Page, api_url: str, token: str, order_id: str) -> str:
    """Answer `order_id`'s waiting compensation with Retry on the operator page; what it says."""
    await page.goto(f"{api_url}/operator#token={token}")
    row = page.locator(f"tr[data-order='{order_id}']")
    await row.get_by_role("button", name="Retry").click()
    said = page.get_by_role("status")
    await said.get_by_text(f"Order {order_id}").wait_for()
    return await said.inner_text()
