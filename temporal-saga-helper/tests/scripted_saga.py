"""A workflow that runs a scripted saga on `Saga`, for the helper's own tests.

Each step is the activity `act`, each compensation the activity `undo`; the tests script what
they do. No order types: the helper is meant for any saga.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from temporal_saga import CompensationError, CompensationFailure, Decision, Saga

#: One attempt per call: a failure reaches the saga at once.
ONCE = RetryPolicy(maximum_attempts=1)


@dataclass
class ScriptedStep:
    """A step of the scripted saga."""

    name: str
    depends_on: list[str] = field(default_factory=list)


@dataclass
class SagaScript:
    """The scripted saga's steps and options."""

    steps: list[ScriptedStep]
    parallel: bool = False
    continue_with_error: bool = False
    operator: bool = False
    #: Refusals are `ApplicationError`s of this type (default: any non-retryable one).
    refusal_type: str | None = None
    #: Each compensation done is told to the activity `told`, by an async `on_compensated`.
    tell_by_activity: bool = False


@dataclass
class SagaOutcome:
    """What the scripted saga did."""

    completed: bool
    compensated: list[str]
    pending: list[str]
    failures: list[str] = field(default_factory=list)
    decisions_asked: list[str] = field(default_factory=list)


def _of_type(refusal_type: str) -> Callable[[BaseException], bool]:
    """A refusal rule of a project whose services refuse with one error type, retryable or not."""

    def refused(error: BaseException) -> bool:
        cause = error.cause if isinstance(error, ActivityError) else error
        return isinstance(cause, ApplicationError) and cause.type == refusal_type

    return refused


def _call(activity: str, step: str) -> Callable[[], Awaitable[object]]:
    async def call() -> object:
        return await workflow.execute_activity(
            activity, step, start_to_close_timeout=timedelta(seconds=30), retry_policy=ONCE
        )

    return call


@workflow.defn
class ScriptedSaga:
    """Runs the script's steps in order; on any failure or cancellation, compensates."""

    def __init__(self) -> None:
        self._decisions: list[Decision] = []
        self._asked: list[str] = []

    @workflow.signal
    def decide(self, decision: str) -> None:
        """An operator's word on the compensation that waits: `retry` or `settled`."""
        self._decisions.append(Decision(decision))

    @workflow.query
    def asked(self) -> list[str]:
        """`<step>#<attempt>` of each failed compensation the operator was asked about."""
        return self._asked

    @workflow.run
    async def run(self, script: SagaScript) -> SagaOutcome:
        """Run the script."""
        compensated: list[str] = []

        async def tell(step: str) -> None:
            compensated.append(step)
            await _call("told", step)()

        saga = Saga(
            parallel=script.parallel,
            continue_with_error=script.continue_with_error,
            on_failure=self._ask_operator if script.operator else None,
            on_compensated=tell if script.tell_by_activity else compensated.append,
            **({"refused": _of_type(script.refusal_type)} if script.refusal_type else {}),
        )
        try:
            for step in script.steps:
                await saga.step(
                    step.name,
                    _call("act", step.name),
                    compensation=_call("undo", step.name),
                    depends_on=step.depends_on,
                )
        except BaseException as err:
            failures: list[str] = []
            try:
                await saga.compensate()
            except CompensationError as failed:
                failures = [failure.step for failure in failed.failures]
            if is_cancelled_exception(err):
                raise
            return SagaOutcome(
                completed=False,
                compensated=compensated,
                pending=saga.pending,
                failures=failures,
                decisions_asked=self._asked,
            )
        return SagaOutcome(completed=True, compensated=compensated, pending=saga.pending)

    async def _ask_operator(self, failure: CompensationFailure) -> Decision:
        self._asked.append(f"{failure.step}#{failure.attempt}")
        await workflow.wait_condition(lambda: bool(self._decisions))
        return self._decisions.pop(0)
