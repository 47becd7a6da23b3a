"""`Saga` on the time-skipping server, with scripted activities."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from scripted_saga import SagaOutcome, SagaScript, ScriptedSaga, ScriptedStep
from temporal_saga import Saga
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

#: How long a held activity waits for the test's go-ahead before failing the test.
HOLD_LIMIT_S = 20.0


class Script:
    """What the `act` and `undo` stand-ins do, and the log of what they did.

    Attributes:
        log: `start:<activity>:<step>` and `end:<activity>:<step>`, in the order they happened.
        refuse: Steps whose `act` is refused (non-retryable).
        fail: `<activity>:<step>` calls that fail (retryable, but the script allows one attempt).
        fail_times: How often each of `fail` fails before it succeeds (default: always).
        hold: `<activity>:<step>` calls that wait, once started, until their event is set.
    """

    def __init__(self) -> None:
        self.log: list[str] = []
        self.refuse: set[str] = set()
        self.fail: set[str] = set()
        self.fail_times: dict[str, int] = {}
        self.hold: dict[str, asyncio.Event] = {}
        self.started: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def _run(self, kind: str, step: str) -> None:
        call = f"{kind}:{step}"
        self.log.append(f"start:{call}")
        self.started[call].set()
        if call in self.hold:
            await asyncio.wait_for(self.hold[call].wait(), HOLD_LIMIT_S)
        if kind == "act" and step in self.refuse:
            raise ApplicationError(f"{step} refused", type="Refused", non_retryable=True)
        if call in self.fail and self.fail_times.get(call, 1) > 0:
            if call in self.fail_times:
                self.fail_times[call] -= 1
            raise ApplicationError(f"{call} failed", type="Unavailable")
        self.log.append(f"end:{call}")

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="act")
        async def act(step: str) -> None:
            await self._run("act", step)

        @activity.defn(name="undo")
        async def undo(step: str) -> None:
            await self._run("undo", step)

        @activity.defn(name="told")
        async def told(step: str) -> None:
            self.log.append(f"told:{step}")

        return [act, undo, told]

    def undone(self) -> list[str]:
        return [line.removeprefix("end:undo:") for line in self.log if line.startswith("end:undo")]


Handle = WorkflowHandle[ScriptedSaga, SagaOutcome]


@asynccontextmanager
async def scripted(
    env: WorkflowEnvironment, script: Script, saga: SagaScript
) -> AsyncIterator[Handle]:
    task_queue = f"saga-{uuid.uuid4()}"
    async with Worker(
        env.client, task_queue=task_queue, workflows=[ScriptedSaga], activities=script.activities()
    ):
        try:
            yield await env.client.start_workflow(
                ScriptedSaga.run, saga, id=f"saga-{uuid.uuid4()}", task_queue=task_queue
            )
        finally:
            for event in script.hold.values():
                event.set()  # let a step the workflow no longer waits for end with the worker


def steps(*names: str, **depends_on: list[str]) -> list[ScriptedStep]:
    return [ScriptedStep(name=name, depends_on=depends_on.get(name, [])) for name in names]


async def run(env: WorkflowEnvironment, script: Script, saga: SagaScript) -> SagaOutcome:
    async with scripted(env, script, saga) as handle:
        return await handle.result()


async def test_all_steps_succeed_and_nothing_is_undone(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    script = Script()

    outcome = await run(time_skipping_env, script, SagaScript(steps=steps("a", "b", "c")))

    assert outcome.completed
    assert outcome.compensated == []
    assert outcome.pending == ["a", "b", "c"]
    assert script.undone() == []


async def test_sequential_undo_runs_in_reverse_and_a_refused_step_drops_its_own(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    script = Script()
    script.refuse = {"c"}

    outcome = await run(time_skipping_env, script, SagaScript(steps=steps("a", "b", "c", "d")))

    assert not outcome.completed
    assert script.undone() == ["b", "a"]
    assert outcome.compensated == ["b", "a"]
    assert outcome.pending == []
    assert "start:act:d" not in script.log


async def test_a_step_that_failed_without_refusal_is_undone_too(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    script = Script()
    script.fail = {"act:b"}  # retries exhausted: it may have taken effect

    await run(time_skipping_env, script, SagaScript(steps=steps("a", "b", "c")))

    assert script.undone() == ["b", "a"]


async def test_sequential_stops_at_the_first_failed_compensation(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    script = Script()
    script.refuse = {"d"}
    script.fail = {"undo:b"}

    outcome = await run(time_skipping_env, script, SagaScript(steps=steps("a", "b", "c", "d")))

    assert script.undone() == ["c"]
    assert outcome.failures == ["b"]
    assert outcome.pending == ["a", "b"]


async def test_continue_with_error_runs_every_compensation_and_lists_the_failures(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    script = Script()
    script.refuse = {"e"}
    script.fail = {"undo:b", "undo:d"}

    outcome = await run(
        time_skipping_env,
        script,
        SagaScript(steps=steps("a", "b", "c", "d", "e"), continue_with_error=True),
    )

    assert script.undone() == ["c", "a"]
    assert outcome.failures == ["d", "b"]
    assert outcome.pending == ["b", "d"]


async def test_parallel_undo_runs_every_compensation_at_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    script = Script()
    script.refuse = {"d"}
    # Each undo waits until the others have started: in sequence, none could finish.
    for step in "abc":
        script.hold[f"undo:{step}"] = asyncio.Event()

    async with scripted(
        time_skipping_env, script, SagaScript(steps=steps("a", "b", "c", "d"), parallel=True)
    ) as handle:
        for step in "abc":
            await asyncio.wait_for(script.started[f"undo:{step}"].wait(), HOLD_LIMIT_S)
        for event in script.hold.values():
            event.set()
        outcome = await handle.result()

    assert sorted(outcome.compensated) == ["a", "b", "c"]
    assert outcome.pending == []


async def test_parallel_undo_waits_for_the_undo_of_what_depends_on_a_step(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    script = Script()
    script.refuse = {"d"}
    script.hold["undo:b"] = asyncio.Event()

    async with scripted(
        time_skipping_env,
        script,
        SagaScript(steps=steps("a", "b", "c", "d", b=["a"]), parallel=True),
    ) as handle:
        # b's undo is held: c's (independent) still runs, a's (b builds on a) must not start.
        await asyncio.wait_for(script.started["undo:b"].wait(), HOLD_LIMIT_S)
        await asyncio.wait_for(script.started["undo:c"].wait(), HOLD_LIMIT_S)
        assert "start:undo:a" not in script.log
        script.hold["undo:b"].set()
        outcome = await handle.result()

    assert script.log.index("end:undo:b") < script.log.index("start:undo:a")
    assert sorted(outcome.compensated) == ["a", "b", "c"]


async def test_parallel_undo_keeps_a_step_whose_dependant_could_not_be_undone(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    script = Script()
    script.refuse = {"d"}
    script.fail = {"undo:b"}

    outcome = await run(
        time_skipping_env,
        script,
        SagaScript(
            steps=steps("a", "b", "c", "d", b=["a"]), parallel=True, continue_with_error=True
        ),
    )

    assert script.undone() == ["c"]
    assert outcome.failures == ["b"]
    assert outcome.pending == ["a", "b"]


async def test_cancelling_during_a_step_undoes_it_and_those_before(
    own_time_skipping_env: WorkflowEnvironment,
) -> None:
    script = Script()
    script.hold["act:b"] = asyncio.Event()

    async with scripted(
        own_time_skipping_env, script, SagaScript(steps=steps("a", "b", "c"))
    ) as handle:
        await asyncio.wait_for(script.started["act:b"].wait(), HOLD_LIMIT_S)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()

    assert isinstance(failure.value.cause, CancelledError)
    assert script.undone() == ["b", "a"]


async def test_cancelling_again_while_undoing_does_not_cut_the_unwinding_short(
    own_time_skipping_env: WorkflowEnvironment,
) -> None:
    script = Script()
    script.hold["act:c"] = asyncio.Event()
    script.hold["undo:b"] = asyncio.Event()

    async with scripted(
        own_time_skipping_env, script, SagaScript(steps=steps("a", "b", "c"))
    ) as handle:
        await asyncio.wait_for(script.started["act:c"].wait(), HOLD_LIMIT_S)
        await handle.cancel()
        await asyncio.wait_for(script.started["undo:b"].wait(), HOLD_LIMIT_S)
        await handle.cancel()
        script.hold["undo:b"].set()
        with pytest.raises(WorkflowFailureError):
            await handle.result()

    assert script.undone() == ["c", "b", "a"]


async def test_the_operator_hook_decides_about_a_failing_compensation(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    script = Script()
    script.refuse = {"d"}
    script.fail = {"undo:c", "undo:b"}
    script.fail_times = {"undo:c": 1}  # fails once, then a retry succeeds

    async with scripted(
        time_skipping_env, script, SagaScript(steps=steps("a", "b", "c", "d"), operator=True)
    ) as handle:
        await wait_asked(handle, ["c#1"])
        await handle.signal(ScriptedSaga.decide, "retry")
        await wait_asked(handle, ["c#1", "b#1"])
        await handle.signal(ScriptedSaga.decide, "retry")
        await wait_asked(handle, ["c#1", "b#1", "b#2"])
        await handle.signal(ScriptedSaga.decide, "settled")  # done by hand
        outcome = await handle.result()

    assert script.undone() == ["c", "a"]
    assert outcome.compensated == ["c", "b", "a"]
    assert outcome.failures == []
    assert outcome.pending == []


async def wait_asked(handle: Handle, asked: list[str]) -> None:
    while (await handle.query(ScriptedSaga.asked)) != asked:
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("refusal_type", "undone"),
    [(None, ["c", "b", "a"]), ("Unavailable", ["b", "a"])],
    ids=["default rule: a retryable error may have taken effect", "the project's own rule"],
)
async def test_what_counts_as_a_refusal_is_the_sagas_rule(
    time_skipping_env: WorkflowEnvironment, refusal_type: str | None, undone: list[str]
) -> None:
    script = Script()
    script.fail = {"act:c"}  # retryable, type "Unavailable", out of attempts at once

    outcome = await run(
        time_skipping_env,
        script,
        SagaScript(steps=steps("a", "b", "c"), refusal_type=refusal_type),
    )

    assert not outcome.completed
    assert script.undone() == undone


async def test_an_async_compensated_hook_is_awaited_before_the_next_undo(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    script = Script()
    script.refuse = {"c"}

    outcome = await run(
        time_skipping_env, script, SagaScript(steps=steps("a", "b", "c"), tell_by_activity=True)
    )

    assert outcome.compensated == ["b", "a"]
    told_b, undo_a = script.log.index("told:b"), script.log.index("start:undo:a")
    assert told_b < undo_a  # the hook's activity ended before the next compensation began
    assert script.log[-1] == "told:a"


def test_a_saga_is_itself_alone_and_shows_what_it_would_undo() -> None:
    first, second = Saga(), Saga()
    first.add_compensation("flight", _nothing)
    second.add_compensation("flight", _nothing)

    assert first != second and first == first
    assert repr(first) == "Saga(parallel=False, continue_with_error=False, pending=['flight'])"
    with pytest.raises(ValueError, match="step 'flight' already has a compensation"):
        first.add_compensation(name="flight", compensation=_nothing)


async def _nothing() -> None:
    pass
