"""The bad-build drill: a broken build rolled out under load is caught, rolled back and cleaned up.

On a dev server, the services and worker processes of their own, orders flow on the good build
(this checkout) while `order-saga deploy rollout` ramps a broken copy (`ops.bad_builds`): one
whose workflow code raises at a step, one whose adapter sends a request its service does not
take. The rollout catches each at its first step and rolls back by itself; the sagas the broken
build started are moved onto the good build and confirm, as every order here is good; no worker
logs a non-determinism error; the audit finds nothing wrong. A good build, rolled out the same
way, is made current with no human step.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle

from domain.saga import OrderResult
from ops.bad_builds import BROKEN_STEP, BadBuild, bad_build, copy_checkout
from ops.stack import worker_process
from ordersaga.deployment import build_id, current_version
from ordersaga.placing import start_saga
from ordersaga.settings import DEFAULT_DEPLOYMENT_NAME
from tests.fraud_build import CopyStack, build_id_of, copy_stack, in_copy
from tests.orders import make_order
from workflows import OrderSaga
from workflows.order_steps import CONFIRMED

TASK_QUEUE = "bad-build-drill"

#: Orders placed a second while the rollout runs: enough that a 5 % ramp gets a few.
ORDERS_PER_S = 6

#: The rollout's steps and hold, short enough for a test, long enough to judge.
ROLLOUT = ("--steps", "5,25,100", "--hold", "15", "--check-every", "1")

Saga = WorkflowHandle[OrderSaga, OrderResult]


@dataclass
class OrderFlow:
    """Orders placed at a steady rate until stopped."""

    client: Client
    sagas: list[Saga] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while not self._stop.is_set():
            self.sagas.append(await start_saga(self.client, make_order(), TASK_QUEUE))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1 / ORDERS_PER_S)

    def stop(self) -> None:
        self._stop.set()

    async def finish(self) -> list[OrderResult]:
        """Stop placing orders; how each saga placed ended."""
        self.stop()
        async with asyncio.timeout(120):
            return [await saga.result() for saga in self.sagas]


@asynccontextmanager
async def drill_stack(copy: Path, tmp_path: Path) -> AsyncIterator[tuple[CopyStack, OrderFlow]]:
    """The stack, a worker of this checkout (current, label good) and one of `copy` (label new),
    and orders flowing until the flow is finished."""
    async with AsyncExitStack() as stack:
        rig = await stack.enter_async_context(copy_stack(copy, tmp_path))
        log = stack.enter_context((tmp_path / "workers.log").open("ab"))
        for label, command in (("good", None), ("new", (sys.executable, str(copy / "worker.py")))):
            await stack.enter_async_context(
                worker_process(
                    rig.address, TASK_QUEUE, rig.services_url, log,
                    data_dir=tmp_path / label, env={"BUILD_LABEL": label},
                    command=command, current=label == "good",
                )
            )  # fmt: skip
        flow = OrderFlow(rig.client)
        placing = asyncio.create_task(flow.run())
        try:
            yield rig, flow
        finally:
            flow.stop()
            await placing


async def deploy(rig: CopyStack, *argv: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ops.cli", "deploy", *argv, "--address", rig.address,
        "--task-queue", TASK_QUEUE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def audit(rig: CopyStack, copy: Path) -> str:
    checked = in_copy(
        copy, "-m", "ops.cli", "audit", "--data-dir", str(rig.services_dir),
        "--address", rig.address,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return checked.stdout


def live_figures(output: str) -> tuple[float, int]:
    """How long the new build was live and how many sagas it started, as the rollout says."""
    found = re.search(r"was live ([\d.]+) s and started (\d+) saga", output)
    assert found, output
    return float(found[1]), int(found[2])


@pytest.mark.parametrize("kind", list(BadBuild))
async def test_a_bad_build_is_rolled_back_at_its_first_step_and_its_sagas_confirm(
    kind: BadBuild, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = bad_build(kind, tmp_path / "bad")
    bad = f"new-{build_id_of(copy)}"
    async with drill_stack(copy, tmp_path) as (rig, flow):
        await asyncio.sleep(2)  # the good build alone for a moment: a baseline to judge by
        rolled = await deploy(rig, "rollout", "--build-id", bad, *ROLLOUT)
        results = await flow.finish()
        current = await current_version(rig.client, DEFAULT_DEPLOYMENT_NAME)
        report = audit(rig, copy)
    with capsys.disabled():
        print(f"\n{kind} build, rolled out under load:\n{rolled[1]}")

    assert rolled[0] == 1, rolled
    assert "rolled back" in rolled[1].splitlines()[0] + rolled[1]
    assert "step 1/3 at 5%" in rolled[1] and "step 2/3" not in rolled[1]
    assert "finding:" in rolled[1]
    live_s, reached = live_figures(rolled[1])
    assert live_s < 120
    assert 0 < reached <= max(3, len(flow.sagas) * 0.15)
    assert current == build_id("good")
    assert {result.state for result in results} == {CONFIRMED}
    assert "0 violation(s)" in report
    workers_log = (tmp_path / "workers.log").read_text()
    assert "TMPRL1100" not in workers_log and "Nondeterminism" not in workers_log
    if kind is BadBuild.RAISES:
        assert "fail their workflow task" in rolled[1]
    else:
        assert f"retry {BROKEN_STEP} with no progress" in rolled[1]


async def test_a_good_build_is_rolled_out_to_all_new_sagas_with_no_human_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = copy_checkout(tmp_path / "next")
    async with drill_stack(copy, tmp_path) as (rig, flow):
        rolled = await deploy(rig, "rollout", "--build-id", build_id("new"), *ROLLOUT)
        results = await flow.finish()
        current = await current_version(rig.client, DEFAULT_DEPLOYMENT_NAME)
        report = audit(rig, copy)
    with capsys.disabled():
        print(f"\ngood build, rolled out under load:\n{rolled[1]}")

    assert rolled[0] == 0, rolled
    assert "promoted" in rolled[1]
    assert current == build_id("new")
    assert {result.state for result in results} == {CONFIRMED}
    assert "0 violation(s)" in report
