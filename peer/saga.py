"""`PeerOrderSaga`: each compensation appended before its step, all of them run in reverse.

The pattern of Temporal's saga samples: a list of compensations, one appended before each
activity (a step that timed out may have taken effect), run in reverse in the `except`, shielded
from the workflow's cancellation, and the error raised again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from peer.activities import ServiceCalls
    from peer.shared import Call, PeerOrder

#: Each step: up to 3 retries of transient faults, 2 s, 4 s, 8 s apart.
STEP_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=2),
        maximum_interval=timedelta(seconds=60),
        maximum_attempts=4,
    ),
}

#: Each compensation: retried with backoff, up to 10 attempts.
UNDO_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=60),
        maximum_attempts=10,
    ),
}


@workflow.defn
class PeerOrderSaga:
    """Reserve, charge, ship, confirm; on any failure, undo what was begun, in reverse."""

    @workflow.run
    async def run(self, order: PeerOrder) -> str:
        """Place the order; return the confirmation's id."""
        compensations: list[Callable[[], Awaitable[None]]] = []
        lines = [{"sku": item.sku, "quantity": item.quantity} for item in order.items]
        total = sum(item.quantity * item.unit_price for item in order.items)
        try:
            compensations.append(self._undo(ServiceCalls.release_inventory, "reserve_inventory"))
            reservation = await self._do(
                ServiceCalls.reserve_inventory,
                "reserve_inventory",
                {"order_id": order.order_id, "items": lines},
            )
            compensations.append(self._undo(ServiceCalls.refund_payment, "charge_payment"))
            charge = await self._do(
                ServiceCalls.charge_payment,
                "charge_payment",
                {
                    "order_id": order.order_id,
                    "customer_id": order.customer_id,
                    "amount": total,
                    "currency": order.currency,
                    "token": order.card_token,
                },
            )
            compensations.append(self._undo(ServiceCalls.cancel_shipment, "schedule_shipment"))
            shipment = await self._do(
                ServiceCalls.schedule_shipment,
                "schedule_shipment",
                {"order_id": order.order_id, "items": lines, "address": order.address},
            )
            compensations.append(self._undo(ServiceCalls.cancel_order, "confirm_order"))
            return await self._do(
                ServiceCalls.confirm_order,
                "confirm_order",
                {
                    "order_id": order.order_id,
                    "customer_id": order.customer_id,
                    "amount": total,
                    "currency": order.currency,
                    "reservation_id": reservation,
                    "charge_id": charge,
                    "shipment_id": shipment,
                },
            )
        except BaseException:
            # Shielded: a cancellation of the workflow must not cut the undoing short.
            await asyncio.shield(asyncio.ensure_future(_compensate(compensations)))
            raise

    async def _do(
        self, activity: Callable[[Any, Call], Awaitable[str]], step: str, body: dict[str, Any]
    ) -> str:
        call = Call(key=_key(step), body=body)
        return await workflow.execute_activity_method(activity, call, **STEP_OPTIONS)

    def _undo(
        self, activity: Callable[[Any, Call], Awaitable[None]], step: str
    ) -> Callable[[], Awaitable[None]]:
        # The undo names the forward call's key; its own key is that key and ":undo".
        key = _key(step)
        call = Call(key=f"{key}:undo", body={"effect_key": key})
        return lambda: workflow.execute_activity_method(activity, call, **UNDO_OPTIONS)


async def _compensate(compensations: list[Callable[[], Awaitable[None]]]) -> None:
    for compensation in reversed(compensations):
        await compensation()


def _key(step: str) -> str:
    return f"{workflow.info().workflow_id}:{step}"
