"""Misbehaviour on demand: added latency and injected failures for a service's mutating calls."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class FaultSettings(BaseModel):
    """How a service misbehaves. The defaults are a well-behaved service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="Chance a call fails.")
    lost_answer_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Chance a call's effect commits and its answer is lost (a 5xx after commit).",
    )
    latency_ms: int = Field(default=0, ge=0, le=60_000, description="Added to every call.")
    fail_next: int = Field(default=0, ge=0, description="Fail this many calls, then go on.")
    fail_after_commit: bool = Field(
        default=False,
        description="Calls that fail (error_rate, fail_next) do so after the effect committed.",
    )

    @model_validator(mode="after")
    def _one_fate_per_call(self) -> FaultSettings:
        if self.error_rate + self.lost_answer_rate > 1:
            raise ValueError("error_rate + lost_answer_rate must be at most 1")
        return self


#: A service that does not misbehave.
NO_FAULTS = FaultSettings()


def option_error(error: ValidationError, options: Mapping[str, str]) -> str:
    """The first problem of fault settings made from command-line options, as one line.

    Args:
        error: What `FaultSettings(...)` raised.
        options: The option that set each field, such as `{"latency_ms": "--latency-ms"}`; the
            line names the options, never the fields.
    """
    first = error.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    for field_name, option in options.items():
        message = message.replace(field_name, option)
    where = options.get(str(first["loc"][0]), "") if first["loc"] else ""
    return f"{where}: {message}" if where else message


@dataclass(frozen=True)
class FaultPlan:
    """What to do to one call."""

    delay_s: float
    fail: bool
    after_commit: bool


class FaultInjector:
    """Decides, call by call, which mutating calls of one service are delayed or fail.

    Thread-safe: the admin endpoints run on a thread pool, and `fail_next` must count down exactly.
    """

    def __init__(self, settings: FaultSettings = NO_FAULTS) -> None:
        """Start with `settings`."""
        self._lock = threading.Lock()
        self._settings = settings
        self._random = random.Random()
        self._calls = 0

    @property
    def settings(self) -> FaultSettings:
        """The settings in force, with what is left of `fail_next`."""
        with self._lock:
            return self._settings

    @settings.setter
    def settings(self, settings: FaultSettings) -> None:
        with self._lock:
            self._settings = settings

    @property
    def calls(self) -> int:
        """How many mutating calls have arrived so far (their fates drawn)."""
        with self._lock:
            return self._calls

    def plan(self) -> FaultPlan:
        """Decide the fate of the next call, counting it against `fail_next`."""
        with self._lock:
            self._calls += 1
            settings = self._settings
            after_commit = settings.fail_after_commit
            if settings.fail_next > 0:
                self._settings = settings.model_copy(update={"fail_next": settings.fail_next - 1})
                fail = True
            else:
                draw = self._random.random()
                fail = draw < settings.error_rate + settings.lost_answer_rate
                after_commit = after_commit or draw >= settings.error_rate
        return FaultPlan(settings.latency_ms / 1000, fail, after_commit)


def faults_router(injector: FaultInjector) -> APIRouter:
    """`GET` and `PUT /admin/faults`: read or replace a service's fault settings at run time.

    And `GET /admin/calls`: how many mutating calls have arrived, so a test can tell a call is
    in flight (held by `latency_ms`) from outside.
    """
    router = APIRouter(prefix="/admin", tags=["admin"])

    @router.get("/faults")
    def get_faults() -> FaultSettings:
        """The fault settings in force."""
        return injector.settings

    @router.put("/faults")
    def put_faults(settings: FaultSettings) -> FaultSettings:
        """Replace the fault settings; fields left out go back to their defaults."""
        injector.settings = settings
        return settings

    @router.get("/calls")
    def get_calls() -> dict[str, int]:
        """How many mutating calls have arrived, whatever their fate."""
        return {"calls": injector.calls}

    return router
