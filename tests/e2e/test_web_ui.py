"""What people see in the Temporal Web UI, in a real browser: each saga's outcome and reason.

A declined card, a withdrawal and an order sent unencrypted all end as FAILED workflows; the
pages must tell them apart without anyone expanding JSON: the failure's message in the
workflow's result, the saga's current details, and the `OrderStatus` and `FailedStep` columns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from infra.codec import UNENCRYPTED_PROBLEM
from tests.support.web_ui import (
    CHROMIUM,
    Outcomes,
    UiStack,
    browser_page,
    open_current_details,
    open_list_with_columns,
    open_workflow,
    place_outcomes,
    ui_stack,
)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


@pytest.fixture(scope="module")
async def ui(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[UiStack, Outcomes]]:
    async with ui_stack(tmp_path_factory.mktemp("web-ui")) as ui:
        yield ui, await place_outcomes(ui, "ui")


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with browser_page() as page:
        yield page


async def test_a_failed_sagas_reason_reads_on_its_page(
    ui: tuple[UiStack, Outcomes], page: Page
) -> None:
    stack, outcomes = ui
    await open_workflow(page, stack, outcomes.declined)
    reason = "charge_payment failed: PaymentDeclined: the card was declined"
    await expect(page.get_by_text(reason).first).to_be_visible()  # once the result is decoded
    assert "Encoded failure" not in await page.inner_text("main")

    details = await open_current_details(page)
    assert "Aborted" in details
    assert "Undone: release_inventory" in details


async def test_a_withdrawal_is_named_as_such_not_as_a_failed_step(
    ui: tuple[UiStack, Outcomes], page: Page
) -> None:
    stack, outcomes = ui
    await open_workflow(page, stack, outcomes.withdrawn)
    await expect(page.get_by_text("withdrawn by the customer").first).to_be_visible()
    details = await open_current_details(page)
    assert "Withdrawn" in details
    assert "failed" not in details  # no step is blamed


async def test_an_unencrypted_order_is_refused_in_words(
    ui: tuple[UiStack, Outcomes], page: Page
) -> None:
    stack, outcomes = ui
    await open_workflow(page, stack, outcomes.refused)
    await expect(page.get_by_text(UNENCRYPTED_PROBLEM.split(";")[0]).first).to_be_visible()


async def test_the_list_tells_the_outcomes_apart_with_the_sagas_columns(
    ui: tuple[UiStack, Outcomes], page: Page, tmp_path: Path
) -> None:
    stack, outcomes = ui
    table = await open_list_with_columns(page, stack, "OrderStatus", "FailedStep")
    rows = {line.split("\t")[1]: line for line in table.splitlines() if "\t" in line}
    assert "Aborted" in rows[outcomes.declined] and "charge_payment" in rows[outcomes.declined]
    assert "Withdrawn" in rows[outcomes.withdrawn]
    assert "Refused" in rows[outcomes.refused]
    assert "schedule_shipment" not in rows[outcomes.withdrawn]
