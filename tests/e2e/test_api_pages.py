"""The Order API's checkout and operator pages in a real browser (Playwright, Debian's chromium)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page
from temporalio.client import Client, WorkflowFailureError

from domain.ids import order_id_of
from domain.saga import SagaState
from tests.support.api_process import Api
from tests.support.operator_waits import saga_waiting_for_an_operator
from tests.support.service_state import Services
from tests.support.starter_runner import new_order_id
from tests.support.web_ui import CHROMIUM, browser_page, place_at_checkout, retry_from_operator_page
from workflows import OrderSaga

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with browser_page() as page:
        yield page


async def test_an_order_placed_at_checkout_confirms_step_by_step(
    api: Api, page: Page, client: Client
) -> None:
    order_id = new_order_id()
    state = await place_at_checkout(page, api.url, api.tokens.shop, "Visa ending 4242", order_id)

    assert state == "OrderConfirmed"
    done = await page.locator("#steps li.done").all_inner_texts()
    assert (
        done
        == (
            await client.get_workflow_handle(f"order-{order_id}").query(OrderSaga.status)
        ).steps_done
    )
    assert len(done) == 4


async def test_a_declined_card_shows_its_compensation(api: Api, page: Page) -> None:
    order_id = new_order_id()
    card = "Card ending 0002 (always declined)"
    state = await place_at_checkout(page, api.url, api.tokens.shop, card, order_id)

    assert state == SagaState.ABORTED
    assert await page.locator("#steps li.done").all_inner_texts() == ["reserve_inventory"]
    assert await page.locator("#steps li.undone").all_inner_texts() == ["release_inventory"]
    assert "charge_payment failed: PaymentDeclined" in await page.locator("#reason").inner_text()


async def test_a_held_compensation_is_resolved_from_the_operator_page(
    api: Api, page: Page, client: Client, services: Services, saga_task_queue: str
) -> None:
    saga = await saga_waiting_for_an_operator(client, services, saga_task_queue)
    order_id = order_id_of(saga.id)

    said = await retry_from_operator_page(page, api.url, api.tokens.operator, order_id)

    assert said.startswith(f"Order {order_id}: retry taken up")
    with pytest.raises(WorkflowFailureError):
        await saga.result()
    status = await saga.query(OrderSaga.status)
    assert (status.state, status.compensations_run) == (SagaState.ABORTED, ["release_inventory"])
    await page.locator(f"tr[data-order='{order_id}']").wait_for(state="detached")


async def test_every_saga_waiting_on_a_compensation_is_retried_from_the_operator_page_at_once(
    api: Api, page: Page, client: Client, services: Services, saga_task_queue: str
) -> None:
    sagas = [
        await saga_waiting_for_an_operator(client, services, saga_task_queue) for _ in range(2)
    ]
    order_ids = [order_id_of(saga.id) for saga in sagas]

    await page.goto(f"{api.url}/operator#token={api.tokens.operator}")
    await page.get_by_label("Waiting on").select_option("release_inventory")
    for order_id in order_ids:
        row = page.locator(f"tr[data-order='{order_id}']")
        await row.wait_for()
        assert "inventory" in await row.inner_text()  # its service, beside its compensation
    await page.get_by_role("button", name="Retry all").click()
    said = page.get_by_role("status")
    await said.get_by_text("answered").wait_for()

    assert "refused" in await said.inner_text()
    for saga in sagas:
        with pytest.raises(WorkflowFailureError):
            await saga.result()
        status = await saga.query(OrderSaga.status)
        assert (status.state, status.compensations_run) == (
            SagaState.ABORTED,
            ["release_inventory"],
        )
