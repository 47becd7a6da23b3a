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


class FraudActivities:
    """A fifth step's activities, declared as a new user would, with a part left out."""

    service: ClassVar[str] = "fraud"  # no ports/fraud.py

    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    @activity.defn
    async def check_fraud(self, input: ReserveInventoryInput) -> StepResult:
        return StepResult(id="hold-1")

    async def clear_fraud_hold(self, input: CompensationInput) -> None:  # no @activity.defn
        return None


def fraud_row(**changes: Any) -> Row[Any]:
    row = Row(
        activity=FraudActivities.check_fraud,
        compensation=FraudActivities.clear_fraud_hold,
        build_input=ORDER_STEPS[0].build_input,
        state_after="FraudChecked",
        event="FraudChecked",
        yields="fraud_check_id",
        undone_event="FraudHoldCleared",
        customer_failure="we could not check the payment",
    )
    return dataclasses.replace(row, **changes)


def test_the_order_saga_table_passes_its_own_check() -> None:
    check_steps(ORDER_STEPS)


def test_a_compensation_that_is_not_an_activity_is_named() -> None:
    with pytest.raises(
        StepTableError, match=r"step check_fraud: its compensation is not an @activity\.defn"
    ):
        check_steps((*ORDER_STEPS, fraud_row()))


def test_a_step_without_a_port_is_named() -> None:
    row = fraud_row(compensation=ORDER_STEPS[0].compensation)
    with pytest.raises(
        StepTableError, match=r"step check_fraud: FraudActivities.service is 'fraud', not a port"
    ):
        check_steps((*ORDER_STEPS, row))


@pytest.mark.parametrize(
    ("part", "taken"),
    [
        ("state_after", "PaymentCharged"),
        ("undone_event", "SagaCompensated"),
        ("yields", "charge_id"),
        ("state_after", "Aborted"),
    ],
)
def test_a_name_another_step_or_the_saga_uses_is_refused(part: str, taken: str) -> None:
    change: dict[str, Any] = {part: taken}
    rows = (*ORDER_STEPS[:2], dataclasses.replace(ORDER_STEPS[2], **change))
    with pytest.raises(
        StepTableError, match=f"step schedule_shipment: {part} {taken!r} is already"
    ):
        check_steps(rows)
