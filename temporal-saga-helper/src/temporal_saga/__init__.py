"""A saga for any Temporal workflow: undo every step already taken, in reverse, when one fails.

Use it from a workflow's run method (`from temporal_saga import Saga`)::

    saga = Saga()
    try:
        hold = await saga.step(
            "reserve",
            lambda: workflow.execute_activity_method(Inventory.reserve, order, ...),
            compensation=lambda: workflow.execute_activity_method(Inventory.release, order, ...),
        )
        await saga.step("charge", lambda: ..., compensation=lambda: ...)
    except BaseException:
        await saga.compensate()
        raise

The rules, each of which matters under failure:

- A step's compensation is registered *before* the step runs: a step that timed out or was
  cancelled may still have taken effect, so it is undone too.
- A step that is refused drops its own compensation: there is nothing to undo. What counts as a
  refusal is the saga's `refused` rule; by default a non-retryable `ApplicationError`, the
  service's word that nothing happened (`is_refusal`). A project whose services say so another
  way gives its own rule.
- `compensate()` cannot be cut short by a further cancellation of the workflow: it runs in a task
  of its own that a cancel request does not reach.
- A compensation that fails (its activity's retry policy exhausted) never vanishes: it goes to
  the `on_failure` hook, which decides to retry it or to count it settled (an operator did it by
  hand). Without a hook, `compensate()` raises `CompensationError`, after the others have run if
  `continue_with_error` is set.

Like the workflow using it, this code is deterministic: it only awaits what it is given, and
imports nothing that reads a clock, randomness or the outside world. A worker can therefore
pass it through the sandbox rather than import it afresh for every run
(`SandboxRestrictions.with_passthrough_modules("temporal_saga")`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

Result = TypeVar("Result")

#: Undoes one step; what it returns is ignored.
Compensation = Callable[[], Awaitable[object]]


class Decision(Enum):
    """What `on_failure` decided about a compensation that failed."""

    RETRY = "retry"
    """Run the compensation again."""
    SETTLED = "settled"
    """Count it done: someone undid the effect another way."""


@dataclass(frozen=True)
class CompensationFailure:
    """A compensation that failed.

    Attributes:
        step: The step it undoes.
        error: What it raised the last time.
        attempt: 1 the first time it failed, 2 after one retry by the hook, and so on.
    """

    step: str
    error: BaseException
    attempt: int


class CompensationError(Exception):
    """Some compensations failed and no hook settled them; `failures` lists each, in order."""

    def __init__(self, failures: Sequence[CompensationFailure]) -> None:
        steps = ", ".join(failure.step for failure in failures)
        super().__init__(f"compensation failed for: {steps}")
        self.failures = list(failures)


#: Decides what to do about a failed compensation; it may wait (for an operator's word, say).
FailureHook = Callable[[CompensationFailure], Awaitable[Decision]]


#: Told the name of each step whose compensation is done; what it returns is awaited if it can
#: be (a coroutine function may be given), and ignored otherwise.
CompensatedHook = Callable[[str], object]


#: Says whether a step's error means the step did not happen (so there is nothing to undo).
RefusalRule = Callable[[BaseException], bool]


def is_refusal(error: BaseException) -> bool:
    """The default `RefusalRule`: `error` is a non-retryable `ApplicationError`.

    Also when it arrives wrapped, as a failed activity or child workflow reports it.
    """
    if isinstance(error, ActivityError | ChildWorkflowError):
        error = error.cause or error
    return isinstance(error, ApplicationError) and error.non_retryable


async def shielded(work: Awaitable[Result]) -> Result:
    """Await `work` to its end, even if the workflow is cancelled (again) meanwhile.

    For what must finish once started, such as undoing a saga's steps and saying so.
    """
    task = asyncio.ensure_future(work)
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            continue  # cancelled again: finish first
    return task.result()


@dataclass
class _Registered:
    step: str
    compensation: Compensation
    depends_on: frozenset[str]


class Saga:
    """The compensations of a workflow's steps, unwound when the workflow must undo them.

    A saga belongs to one workflow run: two sagas are the same only if they are one object, and
    its `repr` shows its settings and what it would undo now.
    """

    def __init__(
        self,
        *,
        parallel: bool = False,
        continue_with_error: bool = False,
        on_failure: FailureHook | None = None,
        on_compensated: CompensatedHook | None = None,
        refused: RefusalRule = is_refusal,
    ) -> None:
        """A saga with nothing registered yet.

        Args:
            parallel: Undo at once instead of in reverse order. Each compensation still waits
                for those of the steps that declared `depends_on` it; with no dependencies
                declared, all compensations run at the same time.
            continue_with_error: Without a hook, run every compensation even after one
                failed, then raise `CompensationError` listing all failures (default: start
                none after the first failure). Either way a failed compensation stays
                `pending`, and so does any whose dependants were not all undone.
            on_failure: Decides about each failed compensation; `compensate()` waits for it.
            on_compensated: Told each step whose compensation is done (or settled), as it
                happens; if it returns an awaitable, the unwind awaits it before going on.
            refused: Whether a step's error means the step did not happen, so that its
                compensation is dropped (default: `is_refusal`, a non-retryable
                `ApplicationError`).
        """
        self.parallel = parallel
        self.continue_with_error = continue_with_error
        self.on_failure = on_failure
        self.on_compensated = on_compensated
        self.refused = refused
        self._registered: list[_Registered] = []
        self._done: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"Saga(parallel={self.parallel}, continue_with_error={self.continue_with_error}, "
            f"pending={self.pending})"
        )

    @property
    def registered(self) -> list[str]:
        """The steps with a compensation (those refused excluded), oldest first, undone or not."""
        return [entry.step for entry in self._registered]

    @property
    def pending(self) -> list[str]:
        """The steps whose compensation is registered and not yet done, oldest first."""
        return [entry.step for entry in self._registered if entry.step not in self._done]

    def add_compensation(
        self, name: str, compensation: Compensation, *, depends_on: Iterable[str] = ()
    ) -> None:
        """Register the undo of the step `name`, to run if the saga is compensated.

        Args:
            name: The step's name, unique within the saga.
            compensation: Undoes the step; it should be idempotent, since it may run after a
                step that never took effect.
            depends_on: Steps whose effect this step builds on: with `parallel`, their
                compensations wait until this one is done.

        Raises:
            ValueError: `name` is registered already, or `depends_on` names a step that is not.
        """
        names = set(self.registered)
        if name in names:
            raise ValueError(f"step {name!r} already has a compensation")
        unknown = set(depends_on) - names
        if unknown:
            raise ValueError(f"step {name!r} depends on unregistered steps: {sorted(unknown)}")
        self._registered.append(_Registered(name, compensation, frozenset(depends_on)))

    async def step(
        self,
        name: str,
        action: Callable[[], Awaitable[Result]],
        compensation: Compensation,
        *,
        depends_on: Iterable[str] = (),
    ) -> Result:
        """Register `compensation`, then run `action`; a refusal drops the compensation again.

        Args:
            name: The step's name, unique within the saga.
            action: Does the step (typically an activity call with its retry policy).
            compensation: Undoes it.
            depends_on: As for `add_compensation`.

        Returns:
            What `action` returned.

        Raises:
            BaseException: Whatever `action` raised, unchanged.
        """
        self.add_compensation(name, compensation, depends_on=depends_on)
        entry = self._registered[-1]
        try:
            return await action()
        except BaseException as err:
            if self.refused(err):
                self._registered.remove(entry)
            raise

    async def compensate(self) -> None:
        """Run the registered compensations; a cancellation request cannot cut this short.

        Raises:
            CompensationError: A compensation failed and no `on_failure` hook settled it.
        """
        await shielded(self._unwind())

    async def _unwind(self) -> None:
        entries = [entry for entry in reversed(self._registered) if entry.step not in self._done]
        failures: list[CompensationFailure] = []
        if self.parallel:
            failures = await self._unwind_in_parallel(entries)
        else:
            for entry in entries:
                failure = await self._run(entry)
                if failure:
                    failures.append(failure)
                    if not self.continue_with_error:
                        break
        if failures:
            raise CompensationError(failures)

    async def _unwind_in_parallel(self, entries: list[_Registered]) -> list[CompensationFailure]:
        finished = {entry.step: asyncio.Event() for entry in entries}
        undone: set[str] = set()
        failures: list[CompensationFailure] = []

        async def run_when_free(entry: _Registered) -> None:
            dependants = [other.step for other in entries if entry.step in other.depends_on]
            try:
                for dependant in dependants:
                    await finished[dependant].wait()
                if failures and not self.continue_with_error:
                    return  # no new compensation starts after the first failure
                if any(dependant not in undone for dependant in dependants):
                    return  # what builds on this step is still in place: keep it too
                failure = await self._run(entry)
                if failure:
                    failures.append(failure)
                else:
                    undone.add(entry.step)
            finally:
                finished[entry.step].set()

        await asyncio.gather(*(run_when_free(entry) for entry in entries))
        return failures

    async def _run(self, entry: _Registered) -> CompensationFailure | None:
        """Run one compensation until it succeeds or the hook settles it."""
        attempt = 0
        while True:
            try:
                await entry.compensation()
                break
            except Exception as err:
                attempt += 1
                failure = CompensationFailure(entry.step, err, attempt)
                if self.on_failure is None:
                    return failure
                if await self.on_failure(failure) is Decision.SETTLED:
                    break
        self._done.add(entry.step)
        if self.on_compensated and inspect.isawaitable(told := self.on_compensated(entry.step)):
            await told
        return None


def __getattr__(name: str) -> str:
    # The version is read on first use rather than at import: a workflow imports this module in
    # the sandbox, where reading the installed distribution's files has no business.
    if name == "__version__":
        from importlib.metadata import version

        return version("temporal-saga-helper")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CompensatedHook",
    "Compensation",
    "CompensationError",
    "CompensationFailure",
    "Decision",
    "FailureHook",
    "RefusalRule",
    "Saga",
    "is_refusal",
    "shielded",
]
