"""Worker Deployment Versioning: which build of the saga a worker runs, and which build is current.

Every worker is a version of one Worker Deployment (`DEPLOYMENT_NAME` in the settings). Its build
id is derived from the saga's code: a digest of every module of this repository (the order app
and its saga helper, `temporal_saga`) that the `workflows` package imports, read as syntax
(comments, docstrings and layout left out). A change to what a saga does therefore cannot run
under an old build id, and a change that only touches words or layout keeps it. `OrderSaga` is
PINNED: a saga runs to its end on the build that started it, and new sagas go to the
deployment's current version (docs/versioning.md).
"""

from __future__ import annotations

import ast
import asyncio
import functools
import hashlib
import importlib.metadata
import importlib.util
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path

import structlog
from temporalio.api.deployment.v1 import WorkerDeploymentInfo
from temporalio.api.deployment.v1 import WorkerDeploymentVersion as VersionProto
from temporalio.api.enums.v1 import RoutingConfigUpdateState
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    DescribeWorkerDeploymentVersionRequest,
    SetWorkerDeploymentCurrentVersionRequest,
    SetWorkerDeploymentRampingVersionRequest,
    UpdateWorkerDeploymentVersionMetadataRequest,
)
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.converter import PayloadConverter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig

from infra.exits import StartFailure
from infra.settings import Settings

log = structlog.get_logger()

#: The package whose code, with what it imports from this repository, makes a build.
SAGA_PACKAGE = "workflows"

#: How long `make_current` waits for the server to know a version its worker just polled with.
REGISTRATION_WAIT_S = 30.0

#: How long a routing change is waited for to reach the deployment's task queues.
PROPAGATION_WAIT_S = 10.0

_PROPAGATING = RoutingConfigUpdateState.ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS


#: A package of each distribution of this repository whose code can make a build: the order
#: app's, and the saga helper's.
REPOSITORY_PACKAGES = ("ordersaga", "temporal_saga")


@functools.cache
def _project_packages() -> frozenset[str]:
    """The top-level packages of this repository's distributions (`order-saga` and its helper).

    Installed as wheels, they sit in site-packages beside every library: a module is the
    project's by its package's name, not by its folder.
    """
    owners = importlib.metadata.packages_distributions()
    distributions = {found for package in REPOSITORY_PACKAGES for found in owners[package]}
    return frozenset(name for name, found in owners.items() if distributions & set(found))


@functools.cache
def _source_root(top: str) -> Path:
    """The folder holding the top-level package or module `top` (found without importing it)."""
    spec = importlib.util.find_spec(top)
    assert spec is not None and spec.origin is not None, top
    origin = Path(spec.origin).resolve()
    return origin.parent.parent if spec.submodule_search_locations else origin.parent


def _module_file(name: str) -> Path | None:
    """The file of module `name` if it is one of this project's, else None."""
    top = name.partition(".")[0]
    if top not in _project_packages():
        return None
    base = _source_root(top).joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(tree: ast.Module, package: str) -> Iterator[str]:
    """The modules a module of `package` imports, submodules named by `from x import y` too."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def _without_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body.pop(0)
    return tree


@functools.cache
def saga_code_digest() -> str:
    """A digest of the syntax of every repository module the saga's code imports.

    Computed once per process: the code a process runs does not change under it.

    Returns:
        12 hexadecimal digits.
    """
    modules = (_source_root(SAGA_PACKAGE) / SAGA_PACKAGE).glob("[!_]*.py")
    pending = [SAGA_PACKAGE, *(f"{SAGA_PACKAGE}.{path.stem}" for path in modules)]
    seen: dict[str, ast.Module] = {}
    while pending:
        name = pending.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen[name] = tree = ast.parse(path.read_text())
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        pending.extend(_imports(tree, package))
    digest = hashlib.sha256()
    for name in sorted(seen):
        tree = _without_docstrings(seen[name])
        digest.update(f"{name}\n{ast.dump(tree)}\n".encode())
    return digest.hexdigest()[:12]


def build_id(label: str | None = None) -> str:
    """This code's build id: the saga's code digest, after `label` (a release name) if given."""
    digest = saga_code_digest()
    return f"{label}-{digest}" if label else digest


def worker_version(settings: Settings) -> WorkerDeploymentVersion:
    """The version of the deployment that a worker of this code, with `settings`, is."""
    return WorkerDeploymentVersion(settings.deployment_name, build_id(settings.build_label))


def deployment_config(version: WorkerDeploymentVersion) -> WorkerDeploymentConfig:
    """A worker's versioning options: it is `version`, and its workflows are PINNED to it."""
    return WorkerDeploymentConfig(
        version=version,
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.PINNED,
    )


def make_current_hint(version: WorkerDeploymentVersion, address: str) -> str:
    """The one line that tells a person how to send new sagas to `version`."""
    options = f"--build-id {version.build_id} --address {address}"
    return (
        f"new sagas go to this worker once its version is current: order-saga deploy rollout "
        f"{options} (in steps, judged against the current version), or order-saga deploy "
        f"set-current {options} (at once)"
    )


async def make_current(
    client: Client, version: WorkerDeploymentVersion, *, within_s: float = REGISTRATION_WAIT_S
) -> None:
    """Make `version` its deployment's current version: new sagas start on it.

    A version that was ramping stops ramping: it takes all new sagas.

    Raises:
        StartFailure: The server did not know the version within `within_s` seconds.
        RPCError: The server refused, for another reason than not knowing the version yet.
    """
    request = SetWorkerDeploymentCurrentVersionRequest(
        namespace=client.namespace,
        deployment_name=version.deployment_name,
        build_id=version.build_id,
        identity=client.identity,
    )
    await _once_registered(
        lambda: client.workflow_service.set_worker_deployment_current_version(request),
        version,
        within_s,
    )
    await _until_propagated(client, version.deployment_name)


async def set_ramping(client: Client, version: WorkerDeploymentVersion, percent: float) -> None:
    """Send `percent` of new sagas to `version`, the rest to the current version.

    Raises:
        StartFailure: The server did not know the version within `REGISTRATION_WAIT_S`.
        RPCError: The server refused, for another reason than not knowing the version yet.
    """
    request = SetWorkerDeploymentRampingVersionRequest(
        namespace=client.namespace,
        deployment_name=version.deployment_name,
        build_id=version.build_id,
        percentage=percent,
        identity=client.identity,
    )
    await _once_registered(
        lambda: client.workflow_service.set_worker_deployment_ramping_version(request),
        version,
        REGISTRATION_WAIT_S,
    )
    await _until_propagated(client, version.deployment_name)


async def stop_ramping(client: Client, deployment_name: str) -> None:
    """Send every new saga to the current version again: no version ramps any more."""
    await client.workflow_service.set_worker_deployment_ramping_version(
        SetWorkerDeploymentRampingVersionRequest(
            namespace=client.namespace,
            deployment_name=deployment_name,
            build_id="",
            percentage=0,
            identity=client.identity,
        )
    )
    await _until_propagated(client, deployment_name)


async def _until_propagated(client: Client, deployment_name: str) -> None:
    """Return once `deployment_name`'s routing has reached its task queues, or after a while.

    The server answers a routing change before its task queues know of it: a saga started in
    between would still go to the version that was current before. The change is made and
    reaches them in the end, so one that takes longer than `PROPAGATION_WAIT_S` (as under load
    it did, for over 30 s) is logged and not waited for.
    """
    try:
        async with asyncio.timeout(PROPAGATION_WAIT_S):
            while True:
                info = await describe_deployment(client, deployment_name)
                if info is None or info.routing_config_update_state != _PROPAGATING:
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        log.warning(
            "routing change still propagating",
            deployment=deployment_name,
            waited_s=PROPAGATION_WAIT_S,
        )


async def _once_registered(
    call: Callable[[], Awaitable[object]], version: WorkerDeploymentVersion, within_s: float
) -> None:
    """`call()`, again every 0.1 s while the server does not know `version` yet.

    A version becomes known to the server shortly after its first worker polls.
    """
    try:
        async with asyncio.timeout(within_s):
            while True:
                try:
                    await call()
                    return
                except RPCError as err:
                    if err.status not in (
                        RPCStatusCode.NOT_FOUND,
                        RPCStatusCode.FAILED_PRECONDITION,
                    ):
                        raise
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise StartFailure(
            f"no worker of build {version.build_id} ({version.deployment_name}) has polled "
            f"within {within_s:g} s: start one (python worker.py) with that code, then try again"
        ) from None


#: The version metadata entry in which a build's workers say which service each step calls.
STEP_SERVICES = "step-services"


async def record_step_services(
    client: Client, version: WorkerDeploymentVersion, services: Mapping[str, str]
) -> None:
    """Record, on `version`, the base URL of the service each of its steps calls (by step name).

    The deploy commands read it to check that a build's services answer before it gets sagas:
    only the build's own workers know its step table and where its services are.

    Raises:
        StartFailure: The server did not know the version within `REGISTRATION_WAIT_S`.
    """
    request = UpdateWorkerDeploymentVersionMetadataRequest(
        namespace=client.namespace,
        deployment_version=version_proto(version),
        upsert_entries={STEP_SERVICES: PayloadConverter.default.to_payload(dict(services))},
        identity=client.identity,
    )
    await _once_registered(
        lambda: client.workflow_service.update_worker_deployment_version_metadata(request),
        version,
        REGISTRATION_WAIT_S,
    )


async def step_services(client: Client, version: WorkerDeploymentVersion) -> dict[str, str] | None:
    """The service each step of `version` calls, as its workers recorded it; None if they did not.

    Raises:
        RPCError: The server does not know `version` (`NOT_FOUND`), or refused.
    """
    described = await client.workflow_service.describe_worker_deployment_version(
        DescribeWorkerDeploymentVersionRequest(
            namespace=client.namespace, deployment_version=version_proto(version)
        )
    )
    entries = described.worker_deployment_version_info.metadata.entries
    if STEP_SERVICES not in entries:
        return None
    recorded = PayloadConverter.default.from_payload(entries[STEP_SERVICES], dict[str, str])
    return dict(recorded)


def version_proto(version: WorkerDeploymentVersion) -> VersionProto:
    """`version` as the server's API takes it."""
    return VersionProto(deployment_name=version.deployment_name, build_id=version.build_id)


async def describe_deployment(client: Client, deployment_name: str) -> WorkerDeploymentInfo | None:
    """What the server knows of `deployment_name`; None before any worker of it has polled."""
    try:
        described = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(
                namespace=client.namespace, deployment_name=deployment_name
            )
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return described.worker_deployment_info


async def current_version(client: Client, deployment_name: str) -> str | None:
    """The build id of `deployment_name`'s current version; None if it has none yet."""
    info = await describe_deployment(client, deployment_name)
    return (info and info.routing_config.current_deployment_version.build_id) or None


def rollout_queue(task_queue: str, build: str) -> str:
    """The task queue of the rollouts that the workers of `build` on `task_queue` run.

    A rollout runs on the build that was current when it began, never on the build it rolls
    out, so it is judged and undone by code known to be good.
    """
    return f"{task_queue}-rollouts-{build}"


def running_on(version: WorkerDeploymentVersion) -> str:
    """A visibility query for the sagas pinned to `version` that have not ended."""
    return (
        f"WorkflowType = 'OrderSaga' AND ExecutionStatus = 'Running' AND "
        f"TemporalWorkerDeploymentVersion = '{version.deployment_name}:{version.build_id}'"
    )


async def is_current(client: Client, version: WorkerDeploymentVersion) -> bool:
    """Whether new sagas start on `version`."""
    return await current_version(client, version.deployment_name) == version.build_id
