"""Where an order's saga stands: its state and status, what an operator or customer may ask."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, StringConstraints, model_validator

from domain.fields import StrictModel


class SagaState(StrEnum):
    """How a saga stands apart from its steps: started, or ending other than confirmed.

    Between `STARTED` and the end, a saga is in the state after its last step done
    (`workflows/order_steps.py` names them: `InventoryReserved`, ...), the last of which is
    the confirmed order. A step's failure ends it `ABORTED` or `FAILED`; a customer's change of
    mind or an operator's cancellation is nobody's failure, and ends it `WITHDRAWN` or
    `CANCELLED`, whatever step was under way.
    """

    STARTED = "Started"
    REFUSED = "Refused"
    """Its input was not an order it may run: nothing was done."""
    FAILED = "Failed"
    """A step failed before any step had taken effect: nothing to undo."""
    COMPENSATING = "Compensating"
    NEEDS_ATTENTION = "NeedsAttention"
    ABORTED = "Aborted"
    """A step failed; every step taken was undone."""
    WITHDRAWN = "Withdrawn"
    """The customer took the order back; every step taken was undone."""
    CANCELLED = "Cancelled"
    """The saga was cancelled (`temporal workflow cancel`); every step taken was undone."""


class Attention(BaseModel):
    """A compensation that kept failing: the saga waits for an operator."""

    compensation: str
    reason: str
    attempts: int


class Waiting(BaseModel):
    """What a saga waiting for an operator waits on, as the server's visibility keeps it.

    The saga writes it to its memo as it starts waiting and removes it once answered, so that
    operators' lists read it from one listing of the server's records, asking no saga (and so
    answering while the sagas' workers do not).

    Attributes:
        order_id: The order.
        step: The step whose undoing keeps failing.
        compensation: That undoing (what an operator retries or marks done).
        service: The service it calls.
        attempts: How many times it was tried.
        reason: Its last failure, in words.
        since: When the saga began to wait.
        holds: What the saga still holds, undone by nothing yet: the id each such step
            created, by step (the stock reserved, the money charged, ...).
        charged: The money among it, in minor units, if a step that charges is held.
        currency: The currency of `charged`.
    """

    order_id: str
    step: str
    compensation: str
    service: str
    attempts: int
    reason: str
    since: datetime
    holds: dict[str, str] = {}
    charged: int | None = None
    currency: str | None = None


class OperatorAction(StrEnum):
    """What an operator can do about a compensation that needs attention."""

    RETRY = "retry"
    MARK_DONE = "mark_done"


class Resolution(StrictModel):
    """An operator's decision on the compensation that needs attention."""

    action: OperatorAction
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""

    @model_validator(mode="after")
    def _done_by_hand_needs_a_reason(self) -> Resolution:
        if self.action is OperatorAction.MARK_DONE and not self.reason:
            raise ValueError("say why the compensation can be marked done (reason)")
        return self


class Withdrawal(StrictModel):
    """A customer taking back an order before it is confirmed."""

    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""


class SagaStatus(BaseModel):
    """The answer of the `status` query: where the saga stands and what it has done.

    Steps and compensations are named by their activities. `compensations_recorded` lists the
    undo of every step that may have taken effect (registered before the step ran, dropped if
    it was refused). `compensations_run` lists every compensation that is done, including
    those an operator marked done by hand, which `resolved_by_hand` lists again with the
    operator's reason. `withdrawal_reason` is what the customer said on withdrawing, if
    anything. `ids` holds what each step done created, by its key (`charge_id`, ...).
    """

    order_id: str
    state: str
    steps_done: list[str] = []
    compensations_recorded: list[str] = []
    compensations_run: list[str] = []
    failed_step: str | None = None
    failure_type: str | None = None
    failure_reason: str | None = None
    attention: Attention | None = None
    resolved_by_hand: dict[str, str] = {}
    withdrawn: bool = False
    withdrawal_reason: str | None = None
    ids: dict[str, str] = {}


class OrderResult(StrictModel):
    """What a confirmed order's saga returns: `ids` of what each step created, by key."""

    order_id: str
    state: str
    total: int
    currency: str
    ids: dict[str, str]
