"""Take the docs' pictures of the Web UI: `python -m tests.screenshots` (about 30 s).

The same stack, sagas and pages as `tests/test_web_ui.py`, in a real browser; the pictures go to
docs/images/, replacing those there.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from tests.web_ui import (
    browser_page,
    open_current_details,
    open_list_with_columns,
    open_workflow,
    place_outcomes,
    ui_stack,
)

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"


async def take() -> None:
    """Place the three sagas and photograph what the Web UI shows of them."""
    IMAGES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="screenshots-") as folder:
        async with ui_stack(Path(folder)) as ui, browser_page() as page:
            outcomes = await place_outcomes(ui, "A7")
            await open_workflow(page, ui, outcomes.declined)
            await page.screenshot(path=IMAGES / "web-ui-failed-saga.png")
            await open_workflow(page, ui, outcomes.withdrawn)
            await open_current_details(page)
            await page.screenshot(path=IMAGES / "web-ui-current-details.png")
            await open_list_with_columns(page, ui, "OrderStatus", "FailedStep")
            await page.screenshot(path=IMAGES / "web-ui-list-columns.png")
    print(f"Pictures in {IMAGES}")


if __name__ == "__main__":
    asyncio.run(take())
