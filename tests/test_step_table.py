"""The step table refuses, at import, a row that lacks a part, naming the step and the part."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pytest
from temporalio import activity

from activities.http import ServiceClient
from ordersaga.models import CompensationInput, StepResult
from ports.inventory import ReserveInventoryInput
from workflows.order_steps import ORDER_STEPS, StepTableError, check_steps
from workflows.order_steps import OrderStep as Row


class LoyaltyActivities:
    """A new step's activities, declared as a new user would, with a part left out."""

    service: ClassVar[str] = "loyalty"  # no ports/loyalty.py

    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    @activity.defn
    async def award_points(self, input: ReserveInventoryInput) -> StepResult:
        return StepResult(id="points-1")

    async def revoke_points(self, input: CompensationInput) -> None:  # no @activity.defn
        return None


def loyalty_row(**changes: Any) -> Row[Any]:
    row = Row(
        activity=LoyaltyActivities.award_points,
        compensation=LoyaltyActivities.revoke_points,
        build_input=ORDER_STEPS[0].build_input,
        state_after="PointsAwarded",
        event="PointsAwarded",
        yields="points_id",
        undone_event="PointsRevoked",
    )
    return dataclasses.replace(row, **changes)


def test_the_order_saga_table_passes_its_own_check() -> None:
    check_steps(ORDER_STEPS)


def test_a_compensation_that_is_not_an_activity_is_named() -> None:
    with pytest.raises(
        StepTableError, match=r"step award_points: its compensation is not an @activity\.defn"
    ):
        check_steps((*ORDER_STEPS, loyalty_row()))


def test_a_step_without_a_port_is_named() -> None:
    row = loyalty_row(compensation=ORDER_STEPS[0].compensation)
    with pytest.raises(
        StepTableError,
        match=r"step award_points: LoyaltyActivities.service is 'loyalty', not a port",
    ):
        check_steps((*ORDER_STEPS, row))


@pytest.mark.parametrize(
    ("part", "taken"),
    [
        ("state_after", ORDER_STEPS[0].state_after),
        ("undone_event", "SagaCompensated"),
        ("yields", ORDER_STEPS[0].yields),
        ("state_after", "Aborted"),
    ],
)
def test_a_name_another_step_or_the_saga_uses_is_refused(part: str, taken: str) -> None:
    change: dict[str, Any] = {part: taken}
    last = ORDER_STEPS[-1]
    rows = (*ORDER_STEPS[:-1], dataclasses.replace(last, **change))
    with pytest.raises(StepTableError, match=f"step {last.name}: {part} {taken!r} is already"):
        check_steps(rows)
