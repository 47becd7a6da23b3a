"""Temporal's workflow sandbox, with its entry snippets compiled once per process.

The SDK enters a workflow's sandbox by `exec` of a short source string: to run each activation,
and, several times per activation, to find the serialization context of each payload sequence
it converts. Python compiles such a string anew on every `exec`, and that compiling was the
largest single item of a worker's profile (docs/performance.md). The strings are a handful of
constants, so compiling each once and executing the code object is the same program, minus the
compiler.

The sandbox itself is untouched: the same importer and restrictions are applied around every
entry. This leans on one private method of the SDK (`_Instance._run_code`); the worker's tests
run every saga through it and check that it is still what the sandbox calls.
"""

from __future__ import annotations

import functools
from types import CodeType
from typing import Any

from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._runner import _Instance


class PrecompiledSandboxRunner(SandboxedWorkflowRunner):
    """A `SandboxedWorkflowRunner` that compiles each of its entry snippets only once."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        """A sandboxed instance of the workflow, entered through compiled snippets."""
        return _PrecompiledInstance(det, self.runner_class, self.restrictions)


class _PrecompiledInstance(_Instance):
    def _run_code(self, code: str, **extra_globals: Any) -> None:
        # The SDK's method hands `code` to `exec`, which runs a code object as it runs a string.
        super()._run_code(compiled_snippet(code), **extra_globals)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=256)
def compiled_snippet(code: str) -> CodeType:
    """`code` compiled as `exec` compiles a string (the same file name), once per process."""
    return compile(code, "<string>", "exec")
