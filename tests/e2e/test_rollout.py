"""`order-saga deploy rollout`: its refusals, pause, resume and abort, and a rollout that outlives
the process that started it and the Temporal server.

Each on a stack of its own (`tests.support.rollout_stack`): this checkout's build (current)
and the same code under another label, a good build to roll out.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from infra.deployment import build_id, current_version
from infra.settings import DEFAULT_DEPLOYMENT_NAME
from ops.bad_builds import copy_checkout
from tests.support.fraud_build import CopyStack
from tests.support.rollout_stack import TASK_QUEUE, deploy, drill_stack

GOOD, NEW = build_id("good"), build_id("new")

#: Two steps with a short hold: a rollout that promotes within seconds unless held.
HOLD_S = 12
QUICK = ("--steps", "50,100", "--hold", str(HOLD_S), "--check-every", "0.5")


async def until_status_says(rig: CopyStack, text: str, within_s: float = 90) -> str:
    """`deploy status` once it says `text`."""
    async with asyncio.timeout(within_s):
        while text not in (status := (await deploy(rig, "status"))[1]):
            await asyncio.sleep(0.5)
    return status


async def until_file_says(path: Path, text: str, within_s: float = 90) -> None:
    """Return once the file at `path` holds `text`."""
    async with asyncio.timeout(within_s):
        while text not in path.read_text():
            await asyncio.sleep(0.2)


async def test_refusals_pause_resume_and_abort(tmp_path: Path) -> None:
    async with drill_stack(copy_checkout(tmp_path / "next"), tmp_path) as (rig, flow):
        await flow.finish()  # judged by time alone: no saga needed
        refused = {
            "a rollout of the current build": await deploy(rig, "rollout", "--build-id", GOOD),
            "steps that do not end at 100": await deploy(
                rig, "rollout", "--build-id", NEW, "--steps", "5,50"
            ),
            "a pause with no rollout": await deploy(rig, "pause"),
        }
        started = await deploy(rig, "rollout", "--build-id", NEW, "--detach", *QUICK)
        paused = await deploy(rig, "pause")
        refused["a second rollout"] = await deploy(rig, "rollout", "--build-id", NEW, "--detach")
        held = await until_status_says(rig, "paused, step 1/2 at 50%")
        await asyncio.sleep(HOLD_S + 1)  # longer than the hold: a paused rollout must not go on
        still = (await deploy(rig, "status"))[1]
        resumed = await deploy(rig, "resume")
        promoted = await until_status_says(rig, "promoted")
        after_promotion = await current_version(rig.client, DEFAULT_DEPLOYMENT_NAME)
        back = await deploy(rig, "rollout", "--build-id", GOOD, "--detach", "--hold", "600")
        await until_status_says(rig, "step 1/3 at 5%")
        aborted = await deploy(rig, "abort")
        undone = await until_status_says(rig, ": aborted")
        after_abort = await current_version(rig.client, DEFAULT_DEPLOYMENT_NAME)

    for what, (code, _, err) in refused.items():
        assert code == 2, what
        assert err.count("\n") == 1 and "Traceback" not in err, (what, err)
    errors = {what: err for what, (_, _, err) in refused.items()}
    assert (
        f"{GOOD} is current already: there is nothing to roll out"
        in errors["a rollout of the current build"]
    )
    assert "--steps: " in errors["steps that do not end at 100"]
    assert "last step must be 100" in errors["steps that do not end at 100"]
    assert "no rollout of order-saga is under way" in errors["a pause with no rollout"]
    assert "is under way" in errors["a second rollout"]
    assert started[0] == 0 and paused[0] == 0 and resumed[0] == 0, (started, paused, resumed)
    assert "paused" in paused[1] and "paused, step 1/2" in held and "paused, step 1/2" in still
    assert f"rollout of {NEW}" in promoted and after_promotion == NEW
    assert back[0] == 0 and aborted[0] == 0, (back, aborted)
    assert "finding: aborted by an operator" in undone
    assert after_abort == NEW


async def test_a_rollout_outlives_its_starter_and_the_server(tmp_path: Path) -> None:
    async with drill_stack(copy_checkout(tmp_path / "next"), tmp_path) as (rig, flow):
        await flow.finish()  # no client may be placing orders while the server is down
        output = tmp_path / "rollout.out"
        with output.open("wb") as out:
            starter = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ops.cli", "deploy", "rollout", "--build-id", NEW,
                "--steps", "50,100", "--hold", "20", "--check-every", "1",
                "--address", rig.address, "--task-queue", TASK_QUEUE, stdout=out, stderr=out,
            )  # fmt: skip
            # It has seen its rollout at the first step (the status says so a moment earlier).
            await until_file_says(output, "step 1/2 at 50%")
            starter.kill()  # SIGKILL: the laptop that started it is gone
            await starter.wait()
        await rig.server.kill()  # and so is the server, for a moment
        await rig.server.start()
        promoted = await until_status_says(rig, "promoted", within_s=120)
        current = await current_version(rig.client, DEFAULT_DEPLOYMENT_NAME)

    assert "promoted" not in output.read_text()
    assert f"rollout of {NEW}" in promoted
    assert current == NEW
