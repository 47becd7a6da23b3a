"""A workflow that reports which module objects its sandbox gives it, for the worker's tests."""

from __future__ import annotations

import sys

from temporalio import workflow

import workflows  # noqa: F401  (the saga's workflow, and with it every helper it imports)


@workflow.defn
class ModuleIdentity:
    """Returns `id()` of each module named in its input, as its sandbox imported it."""

    @workflow.run
    async def run(self, names: list[str]) -> list[int]:
        """The ids of the module objects named `names`."""
        return [id(sys.modules[name]) for name in names]
