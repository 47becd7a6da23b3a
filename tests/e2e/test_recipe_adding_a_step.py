"""The "Adding a step" recipe: the fraud check, a fifth row of the real table, end to end.

The recipe's patch is applied to a copy of the repository; the copy's worker and services run on
a dev server of their own, and what the tests expect of the steps is read from the copy's table.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError

from domain.ids import idempotency_key
from domain.saga import SagaStatus
from ops.stack import worker_process
from ordersaga.order_desk import start_saga
from tests.support.fraud_build import (
    CopyStack,
    ask,
    copy_stack,
    fraud_build,
    in_copy,
    patched_paths,
    steps_of,
)
from tests.support.orders import DECLINED_TOKEN, FAST_POLICY, make_order
from workflows import OrderSaga

TASK_QUEUE = "recipe"


@pytest.fixture(scope="module")
def fraud_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fraud_build(tmp_path_factory.mktemp("fraud-build"))


@pytest.fixture(scope="module")
async def stack(
    fraud_copy: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[CopyStack]:
    data_dir = tmp_path_factory.mktemp("recipe")
    async with copy_stack(fraud_copy, data_dir) as running:
        with (data_dir / "worker.log").open("ab") as log:
            command = (sys.executable, str(fraud_copy / "worker.py"))
            async with worker_process(
                running.address,
                TASK_QUEUE,
                running.services_url,
                log,
                data_dir=data_dir,
                command=command,
            ):
                yield running


def test_the_recipe_is_three_new_files_a_row_a_registration_and_the_customers_words() -> None:
    paths = patched_paths()

    # No list kept twice: the services, their refusals and the stand-ins follow from the row.
    assert sorted(paths) == [
        "activities/fraud.py",
        "ordersaga/consumers/messages.py",
        "ports/fraud.py",
        "services/fraud.py",
        "worker.py",
        "workflows/order_steps.py",
    ]


async def end(stack: CopyStack, **order: object) -> SagaStatus:
    saga = await start_saga(stack.client, make_order(policy=FAST_POLICY, **order), TASK_QUEUE)
    with contextlib.suppress(WorkflowFailureError):
        await saga.result()
    return await saga.query(OrderSaga.status)


def undone_before(steps: list[tuple[str, str]], step: str) -> list[str]:
    """The compensations of the steps before `step`, in the order they run: reverse."""
    names = [name for name, _ in steps]
    return [undo for _, undo in reversed(steps[: names.index(step)])]


async def test_the_fraud_step_runs_in_its_place_and_is_undone_in_its_place(
    fraud_copy: Path, stack: CopyStack
) -> None:
    steps = steps_of(fraud_copy)
    names = [name for name, _ in steps]
    suspected = ask(
        fraud_copy, "SUSPECTED_CUSTOMER", "from services.fraud import SUSPECTED_CUSTOMER"
    )

    confirmed = await end(stack)
    refused = await end(stack, customer_id=suspected)
    declined = await end(stack, payment={"token": DECLINED_TOKEN, "last4": "0002"})

    assert names.index("check_fraud") == names.index("reserve_inventory") + 1
    assert confirmed.steps_done == names
    assert confirmed.ids["fraud_check_id"]
    assert (refused.failed_step, refused.failure_type) == ("check_fraud", "FraudSuspected")
    assert refused.compensations_run == undone_before(steps, "check_fraud")
    assert declined.failed_step == "charge_payment"
    assert declined.compensations_run == undone_before(steps, "charge_payment")
    assert declined.compensations_run[0] == "clear_fraud_hold"


async def test_the_copys_audit_covers_the_fraud_service(fraud_copy: Path, stack: CopyStack) -> None:
    declined = await end(stack, payment={"token": DECLINED_TOKEN, "last4": "0002"})
    audit = ["-m", "ops.cli", "audit", "--data-dir", str(stack.services_dir)]
    audit += ["--address", stack.address]

    clean = in_copy(fraud_copy, *audit)
    # The fraud hold's undo, as if it had never run: its tombstone gone, the check still passed.
    key = idempotency_key(f"order-{declined.order_id}", "check_fraud")
    with sqlite3.connect(stack.services_dir / "fraud.db") as db:
        db.execute("DELETE FROM tombstones WHERE effect_key = ?", (key,))
        db.execute("UPDATE checks SET status = 'passed' WHERE effect_key = ?", (key,))
    planted = in_copy(fraud_copy, *audit)

    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert planted.returncode == 1, planted.stdout + planted.stderr
    assert f"{declined.order_id}: effect-kept: check_fraud's effect is not undone" in planted.stdout


def test_the_copys_own_workflow_and_table_tests_pass_unchanged(fraud_copy: Path) -> None:
    tests = ("tests/integration/test_workflow_unit.py", "tests/unit/test_step_table.py")
    run = in_copy(
        fraud_copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=120", *tests
    )

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
