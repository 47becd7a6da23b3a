"""A workflow that reports which module objects its sandbox gives it, for the worker's tests."""

from __future__ import annotations

import sys

from temporalio import workflow


@workflow.defn
class ModuleIdentity:
    """Imports each module named in its input; returns `id()` of each as its sandbox has it."""

    @workflow.run
    async def run(self, names: list[str]) -> list[int]:
        """The ids of the module objects named `names`."""
        for name in names:
            __import__(name)  # the sandbox's own import: afresh, or passed through
        return [id(sys.modules[name]) for name in names]
