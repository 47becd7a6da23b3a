"""The `OrderSaga` workflow: run the order's steps in turn, or undo every step taken, in reverse.

The steps are the rows of `workflows.order_steps` (reserve, charge, ship, confirm); the undoing is
`temporal_saga.Saga`'s; where the saga stands is `workflows.order_record`'s. Temporal's event
history is the saga's persistence: the compensations registered are rebuilt on replay.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    import pydantic

    from domain.ids import order_id_of
    from domain.order import OrderInput, OrderRequest, RefusedOrder
    from domain.saga import OrderResult, Resolution, SagaState, SagaStatus, Withdrawal
    from workflows.order_steps import ORDER_STEPS, STEPS, WITHDRAWABLE

from temporal_saga import CompensationFailure, Decision, Saga, shielded

from workflows.order_failures import INTERRUPTIONS, StepFailed, saga_error
from workflows.order_record import OrderRecord
from workflows.step_runner import StepRunner

#: States in which the saga waits no more: what a withdrawal waits for (a step may have failed
#: for good as the customer withdrew).
SETTLED = frozenset(
    {SagaState.WITHDRAWN, SagaState.ABORTED, SagaState.FAILED, SagaState.NEEDS_ATTENTION}
)


#: Errors that fail the saga's workflow rather than its workflow task: a payload that is not
#: even JSON fails it at once (instead of retrying the task forever); a payload that is not an
#: order reaches `run` as a `RefusedOrder`.
FAILS_THE_WORKFLOW: tuple[type[Exception], ...] = (pydantic.ValidationError,)

#: What may cut the steps short, each of which undoes them: a step's failure, a withdrawal or a
#: cancellation (asyncio.CancelledError, which is not an Exception), or an error that fails the
#: workflow. Any other exception is a bug of this build: it fails the workflow task, so the saga
#: stays where it stands, undoing nothing, until a build that runs it is deployed and the saga
#: is moved there (docs/versioning.md), rather than undoing a good order for our mistake.
UNWINDS: tuple[type[BaseException], ...] = (
    StepFailed,
    FailureError,
    asyncio.CancelledError,
    *FAILS_THE_WORKFLOW,
)


# PINNED: a saga runs to its end on the build that started it, so a change to what it does is a
# new build of the worker (docs/versioning.md), never a branch in this code.
@workflow.defn(
    failure_exception_types=FAILS_THE_WORKFLOW,
    versioning_behavior=VersioningBehavior.PINNED,
)
class OrderSaga:
    """Places one order: every step succeeds, or every step already taken is undone."""

    @workflow.init
    def __init__(self, request: OrderInput) -> None:
        self._request: OrderRequest  # once `run` has accepted it
        self._runner: StepRunner  # as soon as the order is accepted
        self._record = OrderRecord(order_id_of(workflow.info().workflow_id))
        self._status = self._record.status
        self._telemetry = self._record.telemetry
        self._saga = Saga(
            on_failure=self._ask_operator,
            on_compensated=lambda step: self._record.compensated(STEPS[step]),
        )
        self._steps: asyncio.Task[OrderResult] | None = None
        self._resolution: Resolution | None = None

    @workflow.query
    def status(self) -> SagaStatus:
        """Where the saga stands, what it has done and what it has undone."""
        recorded = [STEPS[step].undo for step in self._saga.registered]
        return self._status.model_copy(update={"compensations_recorded": recorded})

    @workflow.run
    async def run(self, request: OrderInput) -> OrderResult:
        """Run the saga to the end: a confirmed order, or a failure after compensating.

        Here is what happens around the order: its refusal, its withdrawal, its cancellation,
        and its deadline, which the `StepRunner` made here holds every step to; `_place_order`
        is the order's own steps.
        """
        self._request = self._accept(request)
        self._telemetry.started(self._request)
        self._runner = StepRunner(self._request, self._record, self._saga)
        # The steps run as a task of their own, so a withdrawal can interrupt them.
        self._steps = steps = asyncio.create_task(self._place_order(self._request))
        if self._status.withdrawn:
            steps.cancel()
        try:
            result = await steps
            if self._status.withdrawn:
                raise asyncio.CancelledError  # withdrawn as the last step succeeded: undo it too
        except UNWINDS as err:
            failure = await self._unwind(err)
            if failure is err:
                raise  # the workflow was cancelled: it ends as cancelled
            raise failure from err
        self._telemetry.confirmed()
        await self._telemetry.events.publish_unpublished()
        return result

    @workflow.update
    async def withdraw(self, withdrawal: Withdrawal) -> SagaStatus:
        """The customer takes the order back: everything done so far is undone.

        Returns the saga's status once it has ended (or needs attention).
        """
        workflow.logger.info("Order withdrawn", extra={"order_id": self._status.order_id})
        self._status.withdrawn = True
        if self._steps:
            self._steps.cancel()
        await workflow.wait_condition(lambda: self._status.state in SETTLED)
        return self.status()

    @withdraw.validator
    def _accept_withdrawal(self, withdrawal: Withdrawal) -> None:
        if self._status.withdrawn:
            raise ValueError(f"order {self._status.order_id} is already withdrawn")
        if self._status.state not in WITHDRAWABLE:
            raise ValueError(
                f"order {self._status.order_id} can no longer be withdrawn: "
                f"its saga is {self._status.state}"
            )

    @workflow.update
    async def resolve_compensation(self, resolution: Resolution) -> SagaStatus:
        """An operator's answer to a compensation that needs attention.

        Retry it now, or mark it done by hand (with a reason). Returns the status once the saga
        has taken the answer up.
        """
        self._resolution = resolution
        await workflow.wait_condition(lambda: self._resolution is None)
        return self.status()

    @resolve_compensation.validator
    def _accept_resolution(self, resolution: Resolution) -> None:
        if self._status.state != SagaState.NEEDS_ATTENTION or self._resolution:
            raise ValueError(
                f"order {self._status.order_id} is {self._status.state}; "
                "there is no compensation waiting for an operator"
            )

    async def _place_order(self, order: OrderRequest) -> OrderResult:
        for step in ORDER_STEPS:
            await self._runner.run(step)
        return self._record.confirmed(order)

    def _accept(self, request: OrderInput) -> OrderRequest:
        """The order, if the saga may run it; else the saga ends, refused, before any step."""
        if isinstance(request, RefusedOrder):
            raise self._record.refused(request.problems)
        if request.order_id != self._status.order_id:
            problem = f"order_id: must be {self._status.order_id}, as its workflow id says"
            raise self._record.refused([problem])
        return request

    async def _unwind(self, err: BaseException) -> BaseException:
        """Undo every step that may have taken effect; return the error the saga ends with.

        Args:
            err: What cut the steps short: a step's failure, a withdrawal or a cancellation.
        """
        if self._steps:
            self._steps.cancel()
        if not isinstance(err, StepFailed):
            self._record.interrupted()
        if self._status.failure_type in INTERRUPTIONS:
            self._runner.interrupted()
        await shielded(self._undo_all())
        return saga_error(err, self._status)

    async def _undo_all(self) -> None:
        """Undo every step that may have taken effect, and say how the saga ended."""
        undoing = bool(self._saga.pending)
        if undoing:
            self._record.entered(SagaState.COMPENSATING)
            await self._saga.compensate()
        self._record.ended(undid_steps=undoing)
        await self._telemetry.events.publish_unpublished()

    async def _ask_operator(self, failure: CompensationFailure) -> Decision:
        """Wait, visibly, for an operator to retry or settle a compensation that keeps failing."""
        step = STEPS[failure.step]
        tries = self._request.policy.compensations.max_attempts
        await self._record.needs_attention(step, failure.error, tries)
        await workflow.wait_condition(lambda: self._resolution is not None)
        assert self._resolution is not None
        resolution, self._resolution = self._resolution, None
        return self._record.answered(step, resolution)
