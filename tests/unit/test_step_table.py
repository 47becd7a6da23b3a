"""The step table refuses, at import, a row that lacks a part, naming the step and the part."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import pytest
from temporalio import activity

from ports.contract import CompensationInput, Refusal, ServiceContract, StepResult
from ports.inventory import ReserveInventoryInput
from workflows.order_steps import ORDER_STEPS, StepTableError, check_registered, check_steps
from workflows.order_steps import OrderStep as Row

LOYALTY = ServiceContract("loyalty")


class LoyaltyPort(Protocol):
    """A new step's port, declared as a new user would, with a part left out."""

    @activity.defn
    async def award_points(self, input: ReserveInventoryInput) -> StepResult: ...

    async def revoke_points(self, input: CompensationInput) -> None: ...  # no @activity.defn


class WholeLoyaltyPort(Protocol):
    """The same port with no part left out."""

    @activity.defn
    async def award_points(self, input: ReserveInventoryInput) -> StepResult: ...

    @activity.defn
    async def revoke_points(self, input: CompensationInput) -> None: ...


def loyalty_row(**changes: Any) -> Row[Any]:
    row = Row(
        port=LOYALTY,
        activity=LoyaltyPort.award_points,
        compensation=LoyaltyPort.revoke_points,
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


def test_a_new_port_needs_no_list_its_row_names_it() -> None:
    row = loyalty_row(compensation=WholeLoyaltyPort.revoke_points)
    check_steps((*ORDER_STEPS, row))


def test_two_ports_of_one_name_are_refused() -> None:
    impostor = loyalty_row(
        port=ServiceContract(ORDER_STEPS[0].port.name),
        compensation=WholeLoyaltyPort.revoke_points,
    )
    with pytest.raises(
        StepTableError,
        match=f"step award_points: another port is also named '{ORDER_STEPS[0].port.name}'",
    ):
        check_steps((*ORDER_STEPS, impostor))


def test_a_refusal_code_two_ports_define_is_refused() -> None:
    taken = ORDER_STEPS[0].port.refusals[0]
    clash = ServiceContract("loyalty", refusals=(Refusal(taken.code, 409),))
    row = loyalty_row(port=clash, compensation=WholeLoyaltyPort.revoke_points)
    with pytest.raises(StepTableError, match=f"refusal {taken.code} is defined twice"):
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


def test_a_worker_missing_an_adapter_is_refused_naming_the_step() -> None:
    registered = [row.activity for row in ORDER_STEPS] + [row.compensation for row in ORDER_STEPS]
    check_registered(registered)
    last = ORDER_STEPS[-1]
    with pytest.raises(StepTableError, match=f"step {last.name}: no registered activity is named"):
        check_registered(registered[:-1])
