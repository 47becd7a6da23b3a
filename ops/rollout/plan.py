"""What a rollout is asked to do, what it measures of each build, and where it stands."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Limits(BaseModel):
    """How much worse than the current build the new one may do before it is rolled back.

    Each share is of the sagas a build started since the ramp step began. A share passes when
    it exceeds the current build's by no more than `margin`; it is judged only once the new
    build has started `min_sagas` sagas. A saga whose workflow task fails is a bug however few
    there are: one such saga is enough.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    margin: float = Field(default=0.2, ge=0, le=1)
    min_sagas: int = Field(default=2, ge=1)
    retried_attempts: int = Field(
        default=3, ge=2, description="An activity on this attempt counts as making no progress."
    )


class RolloutPlan(BaseModel):
    """A rollout of `candidate` against `baseline`, the deployment's current version.

    Attributes:
        deployment: The Worker Deployment.
        task_queue: The task queue the saga's workers poll.
        candidate: The build rolled out.
        baseline: The build current when the rollout began: what the candidate is compared
            with, and where new sagas go back to if it fails.
        steps: The shares of new sagas given to the candidate in turn, in percent; the last is
            100 (the candidate is made current).
        hold_s: Each step but the last holds at least this long...
        hold_sagas: ...and until at least this many sagas the candidate started in it have
            ended: a saga only just started has not yet shown what the build does with it.
        check_every_s: How often the builds are compared during a step.
        limits: What counts as worse.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    deployment: str
    task_queue: str
    candidate: str
    baseline: str
    steps: tuple[float, ...] = (5.0, 25.0, 100.0)
    hold_s: float = Field(default=60.0, ge=0)
    hold_sagas: int = Field(default=0, ge=0)
    check_every_s: float = Field(default=2.0, gt=0)
    limits: Limits = Limits()

    @field_validator("steps")
    @classmethod
    def _ramp_up_to_all(cls, steps: tuple[float, ...]) -> tuple[float, ...]:
        if not steps or steps[-1] != 100:
            raise ValueError("the last step must be 100 (the new build made current)")
        if any(not 0 < step <= 100 for step in steps):
            raise ValueError("each step must be a share above 0 and at most 100")
        if list(steps) != sorted(set(steps)):
            raise ValueError("the steps must rise")
        return steps


class BuildFigures(BaseModel):
    """What one build's sagas show since a ramp step began.

    Attributes:
        started: Sagas it started.
        ended: Of those, sagas that have ended (whatever the outcome): each a whole sample.
        stuck: Of its running sagas, those whose workflow task fails again and again.
        stuck_error: What the first of those fails with, in a line.
        retried: Of its running sagas, those whose activity has reached the retried attempt,
            by activity name.
        retried_error: The last failure of the first of those, by activity name, in a line.
        failed_own: Sagas that ended failed for the build's own reasons (not a customer's or a
            service's refusal, a withdrawal, a cancellation or the deadline).
        waiting: Sagas waiting for an operator.
        refused: Sagas that ended refused at a step, by step name.
    """

    started: int = 0
    ended: int = 0
    stuck: int = 0
    stuck_error: str = ""
    retried: dict[str, int] = {}
    retried_error: dict[str, str] = {}
    failed_own: int = 0
    waiting: int = 0
    refused: dict[str, int] = {}


class Phase(StrEnum):
    """Where a rollout stands."""

    RAMPING = "ramping"
    PAUSED = "paused"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled back"
    ABORTED = "aborted"
    FAILED = "failed"


#: The phases a rollout ends in.
ENDED = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED, Phase.FAILED})


class Progress(BaseModel):
    """A rollout as `deploy status` shows it, and as it ends.

    Attributes:
        plan: What it was asked to do.
        phase: Where it stands.
        percent: The candidate's share of new sagas now.
        step: The ramp step under way (1-based), of `len(plan.steps)`.
        step_since: When that step began.
        candidate_sagas: Sagas the candidate started in this step.
        findings: Why it was rolled back, one line each (or why it failed).
        recovered: What became of each saga the candidate had started, once rolled back.
        live_since: When the candidate first got new sagas.
        rolled_back_at: When new sagas stopped going to it, if they did.
        reached: Sagas the candidate started over the whole rollout (counted as it ended).
    """

    plan: RolloutPlan
    phase: Phase = Phase.RAMPING
    percent: float = 0.0
    step: int = 0
    step_since: datetime | None = None
    candidate_sagas: int = 0
    findings: list[str] = []
    recovered: list[str] = []
    live_since: datetime | None = None
    rolled_back_at: datetime | None = None
    reached: int = 0
