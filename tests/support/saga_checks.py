"""Checks shared by the crash-safety and property tests: what a saga left at the services and
in its history."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle

from domain.order import OrderRequest
from tests.support.service_state import OrderEffects, Services


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


@dataclass(frozen=True)
class ActivityRun:
    """One activity call of a saga, as its history tells it (a local activity's too)."""

    activity_type: str
    completed: bool
    last_attempt: int
    completed_by: str | None


#: The marker a local activity's outcome is recorded by.
LOCAL_ACTIVITY_MARKER = "core_local_activity"


async def activity_runs(handle: WorkflowHandle[Any, Any]) -> list[ActivityRun]:
    """Every activity the saga ran, in the order it scheduled them.

    A local activity is known by its marker, which the worker that ran it records with the
    workflow task it completes: `completed_by` is that worker.
    """
    scheduled: dict[int, str] = {}
    attempts: dict[int, int] = {}
    completed_by: dict[int, str] = {}
    local: dict[int, ActivityRun] = {}
    task_completed_by = ""
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
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            task_completed_by = event.workflow_task_completed_event_attributes.identity
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == LOCAL_ACTIVITY_MARKER:
                data = json.loads(marker.details["data"].payloads[0].data)
                succeeded = not marker.HasField("failure")
                local[event.event_id] = ActivityRun(
                    data["activity_type"], succeeded, data["attempt"], task_completed_by
                )
    runs = {
        event_id: ActivityRun(
            activity_type=name,
            completed=event_id in completed_by,
            last_attempt=attempts.get(event_id, 0),
            completed_by=completed_by.get(event_id),
        )
        for event_id, name in scheduled.items()
    }
    return [run for _, run in sorted((runs | local).items())]


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


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """The saga's current details, as the Web UI's workflow page asks a worker for them."""
    metadata: WorkflowMetadata = await handle.query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    return metadata.current_details
