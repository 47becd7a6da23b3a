"""`order-saga deploy ramp`, `rollback` and the preflight that guards them and `set-current`.

Each test's workers are versions of a deployment of its own (and poll a task queue of that
name), on the session's dev server, run as `python worker.py` processes as an operator would.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion

from infra.deployment import build_id, step_services
from infra.devserver import DevServer
from ops.stack import worker_process
from tests.e2e.test_deploy import deploy_command, run
from workflows.order_steps import ORDER_STEPS


@asynccontextmanager
async def workers(
    dev_server: DevServer,
    deployment: str,
    services_url: str,
    data_dir: Path,
    labels: Mapping[str, Mapping[str, str]],
) -> AsyncIterator[None]:
    """One worker per label (its extra environment as given), the first one made current."""
    with (data_dir / "workers.log").open("ab") as log:
        async with contextlib.AsyncExitStack() as stack:
            for index, (label, env) in enumerate(labels.items()):
                await stack.enter_async_context(
                    _worker(dev_server, deployment, services_url, data_dir, log, label, env, index)
                )
            yield


def _worker(
    dev_server: DevServer,
    deployment: str,
    services_url: str,
    data_dir: Path,
    log: IO[bytes],
    label: str,
    env: Mapping[str, str],
    index: int,
) -> contextlib.AbstractAsyncContextManager[object]:
    return worker_process(
        dev_server.address,
        deployment,
        services_url,
        log,
        data_dir=data_dir / label,
        env={"DEPLOYMENT_NAME": deployment, "BUILD_LABEL": label, **env},
        current=index == 0,
    )


async def deploy(dev_server: DevServer, deployment: str, *argv: str) -> tuple[int, str, str]:
    return await run(deploy_command(dev_server, deployment, *argv))


async def test_a_ramp_shows_in_status_and_rollback_undoes_it_then_the_previous_current(
    client: Client, dev_server: DevServer, services_url: str, tmp_path: Path
) -> None:
    deployment = "ramp-rollback"
    old, new = build_id("old"), build_id("new")
    async with workers(dev_server, deployment, services_url, tmp_path, {"old": {}, "new": {}}):
        ramped = await deploy(dev_server, deployment, "ramp", "--percent", "5", "--build-id", new)
        status = await deploy(dev_server, deployment, "status")
        stopped = await deploy(dev_server, deployment, "rollback")
        made = await deploy(dev_server, deployment, "set-current", "--build-id", new)
        back = await deploy(dev_server, deployment, "rollback")
        after = await deploy(dev_server, deployment, "status")
        recorded = await step_services(client, WorkerDeploymentVersion(deployment, new))

    assert ramped[0] == 0 and f"{new} ramps: 5% of new sagas" in ramped[1], ramped[2]
    assert f"current: {old}, ramping: {new} at 5%" in status[1], status
    rows = {line.split()[0]: line.split() for line in status[1].splitlines()[2:]}
    assert rows[new][1:4] == ["ramping", "5%", "1"]  # routing, ramp, workers polling
    assert rows[old][1:4] == ["current", "-", "1"]
    assert stopped[0] == 0 and f"{new} no longer ramps" in stopped[1], stopped[2]
    assert made[0] == 0, made[2]
    assert back[0] == 0 and f"{old} is current again" in back[1], back[2]
    assert f"current: {old}" in after[1] and "ramping" not in after[1].splitlines()[0]
    assert recorded == {row.name: f"{services_url}/{row.port.name}" for row in ORDER_STEPS}


async def test_refusals_are_one_line_and_change_nothing(
    dev_server: DevServer, services_url: str, tmp_path: Path, closed_port: int
) -> None:
    deployment = "routing-refusals"
    current = build_id("only")
    lost = f"http://127.0.0.1:{closed_port}/inventory"
    misrouted = f"{services_url}/nowhere"
    builds = {
        "only": {},
        "lost": {"SERVICE_URL_OVERRIDES": f"inventory={lost}"},
        "misrouted": {"SERVICE_URL_OVERRIDES": f"shipping={misrouted}"},
    }
    async with workers(dev_server, deployment, services_url, tmp_path, builds):
        refusals = {
            "ramp of the current build": await deploy(
                dev_server, deployment, "ramp", "--percent", "5", "--build-id", current
            ),
            "rollback with nothing before": await deploy(dev_server, deployment, "rollback"),
            "ramp of a build no worker runs": await deploy(
                dev_server, deployment, "ramp", "--percent", "5", "--build-id", "no-such-build"
            ),
            "a step's service unreachable": await deploy(
                dev_server, deployment, "set-current", "--build-id", build_id("lost")
            ),
            "a step's service misrouted": await deploy(
                dev_server,
                deployment,
                "ramp",
                "--percent",
                "50",
                "--build-id",
                build_id("misrouted"),
            ),
            "a share out of range": await deploy(
                dev_server, deployment, "ramp", "--percent", "100", "--build-id", build_id("lost")
            ),
        }
        status = await deploy(dev_server, deployment, "status")

    for what, (code, _, err) in refusals.items():
        assert code == 2, what
        assert err.strip().count("\n") == 0 and "Traceback" not in err, (what, err)
    errors = {what: err for what, (_, _, err) in refusals.items()}
    assert f"{current} is current already" in errors["ramp of the current build"]
    assert "nothing to roll back to" in errors["rollback with nothing before"]
    assert "no worker of build no-such-build polls" in errors["ramp of a build no worker runs"]
    assert (
        f"step reserve_inventory: nothing answers at {lost}/healthz"
        in (errors["a step's service unreachable"])
    )
    assert (
        f"step schedule_shipment: {misrouted}/healthz answered 404"
        in (errors["a step's service misrouted"])
    )
    assert "step reserve_inventory" not in errors["a step's service misrouted"]
    assert "between 0 and 100" in errors["a share out of range"]
    assert f"current: {current}" in status[1] and "ramping" not in status[1].splitlines()[0]
