"""Take the docs' pictures: `python -m tests.support.screenshots` (about a minute).

The same stack, sagas and pages as `tests/e2e/test_web_ui.py` and `tests/e2e/test_api_pages.py`, in
a real browser: the Temporal Web UI, and the Order API's checkout and operator pages. The pictures
go to docs/images/, replacing those there.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import httpx
from playwright.async_api import Page

from domain.ids import order_id_of
from infra.serving import serving
from infra.sockets import free_port
from ordersaga.api.app import create_api_app
from ordersaga.api.auth import Tokens
from tests.support.operator_waits import saga_waiting_for_an_operator
from tests.support.paths import ROOT
from tests.support.service_state import Services
from tests.support.web_ui import (
    UiStack,
    browser_page,
    open_current_details,
    open_list_with_columns,
    open_workflow,
    place_at_checkout,
    place_outcomes,
    ui_stack,
)

IMAGES = ROOT / "docs" / "images"
TOKENS = Tokens(shop="shop-token-for-pictures", operator="operator-token-for-pictures")


async def take() -> None:
    """Place the sagas and photograph what the Web UI and the pages show of them."""
    IMAGES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="screenshots-") as folder:
        async with ui_stack(Path(folder)) as ui, browser_page() as page:
            await _web_ui(ui, page)
            await _pages(ui, page)
    print(f"Pictures in {IMAGES}")


async def _web_ui(ui: UiStack, page: Page) -> None:
    outcomes = await place_outcomes(ui, "A7")
    await open_workflow(page, ui, outcomes.declined)
    await page.screenshot(path=IMAGES / "web-ui-failed-saga.png")
    await open_workflow(page, ui, outcomes.withdrawn)
    await open_current_details(page)
    await page.screenshot(path=IMAGES / "web-ui-current-details.png")
    await open_list_with_columns(page, ui, "OrderStatus", "FailedStep")
    await page.screenshot(path=IMAGES / "web-ui-list-columns.png")


async def _pages(ui: UiStack, page: Page) -> None:
    stack = ui.stack
    app = create_api_app(stack.client, stack.task_queue, TOKENS)
    async with serving(app, "127.0.0.1", free_port(), "Order API") as api_url:
        card = "Card ending 0002 (always declined)"
        await place_at_checkout(page, api_url, TOKENS.shop, card, "A8-checkout")
        await page.screenshot(path=IMAGES / "checkout-declined.png")
        async with httpx.AsyncClient(base_url=stack.services_url) as http:
            saga = await saga_waiting_for_an_operator(
                stack.client, Services(http), stack.task_queue
            )
        await page.goto(f"{api_url}/operator#token={TOKENS.operator}")
        await page.get_by_label("Waiting on").select_option("release_inventory")
        await page.locator(f"tr[data-order='{order_id_of(saga.id)}']").wait_for()
        await page.get_by_role("button", name="Retry all").wait_for()
        await page.screenshot(path=IMAGES / "operator-page.png")


if __name__ == "__main__":
    asyncio.run(take())
