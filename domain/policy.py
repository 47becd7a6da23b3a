"""How the saga times out and retries its activities: data, so it can be set per order."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from domain.fields import MAX_STEP_OVERRIDES, Identifier


class ActivityPolicy(BaseModel):
    """Timeout and retries of one kind of activity call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(default=10.0, gt=0, le=3600, description="Start-to-close, seconds.")
    first_retry_s: float = Field(default=2.0, gt=0, le=3600, description="First backoff, seconds.")
    backoff: float = Field(
        default=2.0, ge=1, le=10, description="Each backoff is this times the last."
    )
    max_retry_interval_s: float = Field(default=60.0, gt=0, le=86400)
    max_attempts: int = Field(default=4, ge=1, le=1000, description="First call included.")

    @property
    def timeout(self) -> timedelta:
        """Start-to-close timeout of one attempt."""
        return timedelta(seconds=self.timeout_s)


class SagaPolicy(BaseModel):
    """Timeouts and retries of the whole saga. The defaults are what the business asked for.

    Attributes:
        steps: Every forward step: up to 3 retries of transient faults, 2 s, 4 s, 8 s apart.
        step_overrides: A different policy for some steps, by step name (`charge_payment`).
        compensations: Each compensation retries with backoff up to this bound; past it the
            saga needs attention and waits for an operator, who can retry or mark it done.
        deadline_s: The order must be confirmed within this many seconds of being placed, or
            it is undone (each step's activity may take only the time left, rather than an
            execution timeout, which would skip the compensations). None: no deadline.
        local_activities: The fast path: run the steps and compensations as local activities,
            inside the workflow task, instead of through the server's activity queue. For
            service calls that take well under the activity timeout; see the docs'
            performance page for what changes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: ActivityPolicy = ActivityPolicy()
    step_overrides: dict[Identifier, ActivityPolicy] = Field(
        default={}, max_length=MAX_STEP_OVERRIDES
    )
    compensations: ActivityPolicy = ActivityPolicy(first_retry_s=1.0, max_attempts=10)
    deadline_s: float | None = Field(default=900.0, gt=0, le=30 * 86400)
    local_activities: bool = False

    @field_validator("step_overrides", mode="before")
    @classmethod
    def _few_overrides(cls, overrides: Any) -> Any:
        # Before the entries themselves: a policy cannot grow an order past Temporal's limits.
        if isinstance(overrides, dict) and len(overrides) > MAX_STEP_OVERRIDES:
            raise PydanticCustomError("too_long", f"must name at most {MAX_STEP_OVERRIDES} steps")
        return overrides

    def for_step(self, step: str) -> ActivityPolicy:
        """The policy of one forward step."""
        return self.step_overrides.get(step, self.steps)
