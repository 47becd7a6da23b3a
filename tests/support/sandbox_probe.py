"""Workflows that probe the sandbox they run in, for the worker's tests."""

from __future__ import annotations

import pkgutil
import sys
from datetime import UTC, datetime

from temporalio import workflow

import workflows

#: Every module of the `workflows` package, the package itself first.
EVERY_WORKFLOW_MODULE = [workflows.__name__] + [
    module.name for module in pkgutil.iter_modules(workflows.__path__, f"{workflows.__name__}.")
]

# Each imported as the sandbox loads this module (its own import: afresh, or passed through), so
# that none is first imported while a workflow runs. `__import__`: the sandbox hooks it.
for _name in EVERY_WORKFLOW_MODULE:
    __import__(_name)


@workflow.defn
class ModuleIdentity:
    """Returns `id()` of each module named in its input, as its sandbox has it."""

    @workflow.run
    async def run(self, names: list[str]) -> list[int]:
        """The ids of the module objects named `names`."""
        return [id(sys.modules[name]) for name in names]


@workflow.defn(failure_exception_types=[workflow.NondeterminismError])
class ClockReader:
    """Reads the machine's clock, which a sandbox must refuse: the workflow fails if it does."""

    @workflow.run
    async def run(self) -> str:
        """The time now, by the machine's clock."""
        return datetime.now(UTC).isoformat()
