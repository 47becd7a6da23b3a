"""The saga's next build: a copy of the repository with the recipe's fraud-check step applied.

The recipe (docs/recipes/adding-a-step.md) is one patch, `docs/recipes/fraud-check.patch`. The
copy runs beside this checkout: its worker (`python <copy>/worker.py`), its services (`python -m
services` from the copy) and its commands import the copy's packages, since a script's folder and
the working folder come first on `sys.path`. What the tests must know of the copy's step table,
they ask the copy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from temporalio.client import Client

from infra.devserver import DevServer
from infra.sockets import free_port
from infra.temporal import connect
from ops.bad_builds import ROOT, copy_checkout
from ops.stack import ServicesProcess
from tests.support.service_state import Services

#: The recipe, as a patch against this checkout.
PATCH = ROOT / "docs" / "recipes" / "fraud-check.patch"


def patched_paths() -> list[str]:
    """The files the recipe's patch adds or changes."""
    numstat = git("apply", "--numstat", str(PATCH), cwd=ROOT)
    return [line.split("\t")[2] for line in numstat.splitlines()]


def fraud_build(dest: Path) -> Path:
    """Copy this checkout to `dest` and apply the recipe there; return `dest`."""
    git("apply", str(PATCH), cwd=copy_checkout(dest))
    return dest


def in_copy(copy: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run `python argv...` with the copy's packages."""
    return subprocess.run(
        [sys.executable, *argv], cwd=copy, capture_output=True, text=True, check=False
    )


def ask(copy: Path, expression: str, imports: str) -> object:
    """The JSON value of a Python `expression` evaluated in the copy after `imports`."""
    answer = in_copy(copy, "-c", f"import json; {imports}; print(json.dumps({expression}))")
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


def steps_of(copy: Path) -> list[tuple[str, str]]:
    """The copy's steps, in order: (name, compensation's name)."""
    steps = ask(
        copy,
        "[(row.name, row.undo) for row in ORDER_STEPS]",
        "from workflows.order_steps import ORDER_STEPS",
    )
    assert isinstance(steps, list)
    return [(name, undo) for name, undo in steps]


def git(*argv: str, cwd: Path) -> str:
    """Run git; its output."""
    return subprocess.run(
        ["git", *argv], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout


@dataclass(frozen=True)
class CopyStack:
    """A dev server and the copy's services, for workers of either checkout.

    Attributes:
        client: A client of the server.
        server: The server, on a SQLite file: killed and started again, it keeps every workflow.
        address: The server's host:port.
        services_url: Base URL of the services.
        services: Their state and faults.
        services_dir: Their databases.
    """

    client: Client
    server: DevServer
    address: str
    services_url: str
    services: Services
    services_dir: Path


#: A version left behind drains, and its workers count as gone, within seconds instead of the
#: server's minutes (a grace period for visibility to catch up, a poller history of 5 minutes).
#: Polls end after a second, so a live worker polls again well within that history, as a
#: deploy's preflight asks of a version's workers.
QUICK_DRAINAGE_ARGS = (
    "--dynamic-config-value", 'matching.wv.VersionDrainageStatusVisibilityGracePeriod="1s"',
    "--dynamic-config-value", 'matching.wv.VersionDrainageStatusRefreshInterval="1s"',
    "--dynamic-config-value", 'matching.PollerHistoryTTL="3s"',
    "--dynamic-config-value", 'matching.longPollExpirationInterval="1s"',
)  # fmt: skip


@asynccontextmanager
async def copy_stack(copy: Path, data_dir: Path) -> AsyncIterator[CopyStack]:
    """A dev server and the services of `copy` (the fraud service too)."""
    async with AsyncExitStack() as stack:
        log = stack.enter_context((data_dir / "stack.log").open("ab"))
        server = DevServer(
            port=free_port(),
            db_file=data_dir / "temporal.db",
            log=log,
            extra_args=QUICK_DRAINAGE_ARGS,
        )
        await server.start()
        stack.push_async_callback(server.stop)
        services = ServicesProcess(free_port(), data_dir / "services", log, code=copy)
        await services.start()
        stack.push_async_callback(services.stop)
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=services.base_url))
        yield CopyStack(
            client=await connect(server.address),
            server=server,
            address=server.address,
            services_url=services.base_url,
            services=Services(http),
            services_dir=services.data_dir,
        )
