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
import re
from pathlib import Path

import pytest

from domain.saga import OrderResult
from infra.deployment import build_id, current_version
from infra.settings import DEFAULT_DEPLOYMENT_NAME
from ops.bad_builds import BROKEN_STEP, BadBuild, bad_build, build_id_of, copy_checkout
from tests.support.rollout_stack import ROLLOUT, audit, deploy, drill_stack
from workflows.order_steps import CONFIRMED


def live_figures(output: str) -> tuple[float, int]:
    """How long the new build was live and how many sagas it started, as the rollout says."""
    found = re.search(r"was live ([\d.]+) s and started (\d+) saga", output)
    assert found, output
    return float(found[1]), int(found[2])


async def rolled_out(
    copy: Path, build: str, tmp_path: Path
) -> tuple[tuple[int, str, str], list[OrderResult], str | None, str]:
    """`deploy rollout` of `build` (run by `copy`'s worker) under load, once every saga ended.

    Returns:
        The command's exit code, output and errors; how each saga ended; the current version
        then; the audit's report.
    """
    async with drill_stack(copy, tmp_path) as (rig, flow):
        await asyncio.sleep(2)  # the good build alone for a moment: a baseline to judge by
        rolled = await deploy(rig, "rollout", "--build-id", build, *ROLLOUT)
        results = await flow.finish()
        current = await current_version(rig.client, DEFAULT_DEPLOYMENT_NAME)
        return rolled, results, current, audit(rig, copy)


@pytest.mark.parametrize("kind", list(BadBuild))
async def test_a_bad_build_is_rolled_back_at_its_first_step_and_its_sagas_confirm(
    kind: BadBuild, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = bad_build(kind, tmp_path / "bad")
    bad = f"new-{build_id_of(copy)}"
    rolled, results, current, report = await rolled_out(copy, bad, tmp_path)
    with capsys.disabled():
        print(f"\n{kind} build, rolled out under load:\n{rolled[1]}{len(results)} orders in all")

    assert rolled[0] == 1, rolled
    assert "rolled back" in rolled[1].splitlines()[0] + rolled[1]
    assert "step 1/3 at 5%" in rolled[1] and "step 2/3" not in rolled[1]
    assert "finding:" in rolled[1]
    live_s, reached = live_figures(rolled[1])
    assert live_s < 120
    assert 0 < reached <= max(3, len(results) * 0.15)
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
    rolled, results, current, report = await rolled_out(copy, build_id("new"), tmp_path)
    with capsys.disabled():
        print(f"\ngood build, rolled out under load:\n{rolled[1]}")

    assert rolled[0] == 0, rolled
    assert "promoted" in rolled[1]
    assert current == build_id("new")
    assert {result.state for result in results} == {CONFIRMED}
    assert "0 violation(s)" in report
