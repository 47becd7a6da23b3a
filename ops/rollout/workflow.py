"""A rollout of a new build as a Temporal workflow: ramp in steps, judge each, promote or roll back.

The rollout runs on the workers of the build current when it began (the baseline), on a task
queue of that build's own (`infra.deployment.rollout_queue`), not PINNED to any version of
the saga: it outlives the process that started it, and a restart of the server or of a worker.
At each step it gives the new build a share of new sagas, then compares both builds every few
seconds on what their sagas show (`ops.rollout.judgement`). Healthy for the whole hold: the next
step, and at 100 % the new build is current. Unhealthy at any check: new sagas go back to the
baseline at once, and the new build's running sagas are moved onto it (`ops.recovery`).
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from ops.rollout.activities import Measurement, RolloutActivities
    from ops.rollout.judgement import findings
    from ops.rollout.plan import ENDED, Phase, Progress, RolloutPlan

#: Routing and judging calls answer in seconds; a recovery replays every moved saga.
QUICK = timedelta(seconds=30)
RECOVERY = timedelta(minutes=10)

#: A saga whose first workflow task was running on the new build as its ramp stopped is
#: pinned to it a moment later; recovery looks again after this long.
SETTLE = timedelta(seconds=5)

#: Transient failures (the server restarting) are retried; a failed preflight is not.
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10))


@workflow.defn(name="DeployRollout")
class DeployRollout:
    """Rolls one build out to the saga's deployment, or back."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._paused = False
        self._aborted = False

    @workflow.run
    async def run(self, plan: RolloutPlan) -> Progress:
        """Ramp `plan.candidate` up step by step; return how the rollout ended."""
        self._progress = progress = Progress(plan=plan)
        try:
            for index, percent in enumerate(plan.steps, start=1):
                await workflow.execute_activity_method(
                    RolloutActivities.route_share,
                    args=[plan, percent],
                    start_to_close_timeout=QUICK,
                    retry_policy=RETRY,
                )
                progress.step, progress.percent = index, percent
                progress.live_since = progress.live_since or workflow.now()
                if percent >= 100:
                    progress.phase = Phase.PROMOTED
                    return progress
                if not await self._healthy_through_step():
                    return await self._roll_back(
                        Phase.ABORTED if self._aborted else Phase.ROLLED_BACK
                    )
        except ActivityError as err:
            cause = err.cause
            progress.findings = [cause.message if isinstance(cause, ApplicationError) else str(err)]
            return await self._roll_back(Phase.FAILED)
        raise AssertionError("the plan's last step is 100")  # RolloutPlan checks it

    async def _healthy_through_step(self) -> bool:
        """Hold the step, judging both builds, until it has been held long enough.

        Returns:
            True once held; False as soon as a finding turns up, or the rollout is aborted.
        """
        progress = self._current
        plan = progress.plan
        since = progress.step_since = workflow.now()
        while True:
            with contextlib.suppress(TimeoutError):  # the time between checks has passed
                await workflow.wait_condition(
                    lambda: self._aborted, timeout=timedelta(seconds=plan.check_every_s)
                )
            if self._aborted:
                progress.findings = ["aborted by an operator"]
                return False
            measured = await self._measure(since)
            progress.candidate_sagas = measured.candidate.started
            names = (plan.candidate, plan.baseline)
            progress.findings = findings(measured.candidate, measured.baseline, plan.limits, names)
            if progress.findings:
                return False
            held = workflow.now() - since >= timedelta(seconds=plan.hold_s)
            if held and measured.candidate.ended >= plan.hold_sagas and not self._paused:
                return True

    async def _roll_back(self, phase: Phase) -> Progress:
        """New sagas back to the baseline; the candidate's running sagas moved onto it."""
        progress = self._current
        plan = progress.plan
        await workflow.execute_activity_method(
            RolloutActivities.stop_ramping, plan, start_to_close_timeout=QUICK, retry_policy=RETRY
        )
        rolled_back_at = workflow.now()
        if progress.live_since:
            await workflow.sleep(SETTLE)
            reached = await self._measure(progress.live_since)
            progress.reached, progress.rolled_back_at = reached.candidate.started, rolled_back_at
            progress.recovered = await workflow.execute_activity_method(
                RolloutActivities.recover_candidate,
                plan,
                start_to_close_timeout=RECOVERY,
                retry_policy=RETRY,
            )
        progress.phase = phase
        return progress

    async def _measure(self, since: datetime) -> Measurement:
        """Both builds' figures since `since`."""
        return await workflow.execute_activity_method(
            RolloutActivities.measure,
            args=[self._current.plan, since],
            start_to_close_timeout=QUICK,
            retry_policy=RETRY,
        )

    @property
    def _current(self) -> Progress:
        assert self._progress is not None, "the rollout has not begun"
        return self._progress

    @workflow.query
    def progress(self) -> Progress:
        """Where the rollout stands."""
        progress = self._current
        if self._paused and progress.phase is Phase.RAMPING:
            return progress.model_copy(update={"phase": Phase.PAUSED})
        return progress

    @workflow.update
    def pause(self) -> Progress:
        """Hold at the current step: judging goes on (a finding still rolls back), steps do not."""
        self._paused = True
        return self.progress()

    @workflow.update
    def resume(self) -> Progress:
        """Go on to the next step once this one has been held long enough."""
        self._paused = False
        return self.progress()

    @workflow.update
    def abort(self) -> Progress:
        """Roll back now: new sagas to the baseline, the candidate's sagas moved onto it."""
        self._aborted = True
        return self.progress()

    @pause.validator
    def _may_pause(self) -> None:
        self._check_under_way()

    @resume.validator
    def _may_resume(self) -> None:
        self._check_under_way()

    @abort.validator
    def _may_abort(self) -> None:
        self._check_under_way()

    def _check_under_way(self) -> None:
        if self._progress is None or self._progress.phase in ENDED or self._aborted:
            raise ValueError("the rollout has ended, or is rolling back")
