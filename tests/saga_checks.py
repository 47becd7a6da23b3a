"""Checks shared by the crash-safety and property tests: what a saga left at the services and
in its history."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import WorkflowHandle

from ordersaga.models import OrderRequest
from tests.service_state import OrderEffects, Services


async def new_skus(services: Services, count: int, stock: int, prefix: str = "SKU-T") -> list[str]:
    """SKUs that only the calling test uses, each with `stock` units: stock deltas are exact."""
    skus = [f"{prefix}-{uuid.uuid4().hex[:10].upper()}" for _ in range(count)]
    for sku in skus:
        response = await services.http.put(f"/inventory/stock/{sku}", json={"available": stock})
        response.raise_for_status()
    return skus


def quantities(order: OrderRequest) -> Counter[str]:
    """Units per SKU of an order."""
    return Counter({item.sku: item.quantity for item in order.items})


async def wait_for_started_activity(
    handle: WorkflowHandle[Any, Any], activity_type: str, within_s: float = 20.0
) -> None:
    """Return once the saga's `activity_type` activity has been started by a worker."""
    async with asyncio.timeout(within_s):
        while True:
            described = await handle.describe()
            if any(
                pending.activity_type.name == activity_type
                and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                for pending in described.raw_description.pending_activities
            ):
                return
            await asyncio.sleep(0.02)


@dataclass(frozen=True)
class ActivityRun:
    """One activity call of a saga, as its history tells it."""

    activity_type: str
    completed: bool
    last_attempt: int
    completed_by: str | None


async def activity_runs(handle: WorkflowHandle[Any, Any]) -> list[ActivityRun]:
    """Every activity the saga scheduled, in the order it scheduled them."""
    scheduled: dict[int, str] = {}
    attempts: dict[int, int] = {}
    completed_by: dict[int, str] = {}
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attrs.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            attempts[started.scheduled_event_id] = started.attempt
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            done = event.activity_task_completed_event_attributes
            completed_by[done.scheduled_event_id] = done.identity
    return [
        ActivityRun(
            activity_type=name,
            completed=event_id in completed_by,
            last_attempt=attempts.get(event_id, 0),
            completed_by=completed_by.get(event_id),
        )
        for event_id, name in sorted(scheduled.items())
    ]


def assert_confirmed_once(effects: OrderEffects, order: OrderRequest) -> None:
    """Exactly one effect per step, of the right size, none undone."""
    assert [(r["status"], r["items"]) for r in effects.reservations] == [
        ("reserved", [item.model_dump(include={"sku", "quantity"}) for item in order.items])
    ]
    assert [(c["amount"], c["status"]) for c in effects.charges] == [(order.total, "charged")]
    assert effects.refunds == []
    assert [s["status"] for s in effects.shipments] == ["scheduled"]
    assert effects.record is not None
    assert (effects.record["status"], effects.record["amount"]) == ("confirmed", order.total)
    assert effects.record["reservation_id"] == effects.reservations[0]["reservation_id"]
    assert effects.record["charge_id"] == effects.charges[0]["charge_id"]
    assert effects.record["shipment_id"] == effects.shipments[0]["shipment_id"]


def assert_fully_undone(effects: OrderEffects) -> None:
    """Nothing of the order is left in effect: no stock held, no money kept, nothing shipped."""
    assert effects.live_reservations == []
    assert effects.net_charged == 0
    assert len(effects.charges) <= 1, "charged more than once"
    assert effects.live_shipments == []
    assert effects.record is None or effects.record["status"] != "confirmed"
