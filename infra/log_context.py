"""Every log line of a saga carries its ids: order, workflow and run, and in activities more.

Two sources of lines, one set of fields:

- Workflow code logs through `workflow.logger` (replay-safe: it is silent while a history is
  replayed). The SDK puts the workflow's info in the record's extra, under `temporal_workflow`;
  `temporal_fields` turns that into `workflow_id`, `run_id`, `workflow_type` and `order_id`.
- Activities and what they call log through structlog (or any standard logger); a line
  logged while an activity runs gets `workflow_id`, `run_id`, `order_id`, `activity_type` and
  `attempt` from `temporal_fields` too, which reads them from the activity's info as the line is
  written. Nothing is bound as an activity starts: most activities write no line at all.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

import structlog
from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from domain.ids import WORKFLOW_ID_PREFIX, order_id_of

log = structlog.get_logger()


def saga_ids(workflow_id: str, run_id: str) -> dict[str, str]:
    """The ids every line of a saga carries (no order id for a workflow that is not a saga)."""
    ids = {"workflow_id": workflow_id, "run_id": run_id}
    if workflow_id.startswith(WORKFLOW_ID_PREFIX):
        ids["order_id"] = order_id_of(workflow_id)
    return ids


def temporal_fields(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: the SDK's `temporal_workflow`/`temporal_activity` as flat fields.

    Runs after `structlog.stdlib.ExtraAdder`, which copies a record's extra into the event.
    Fields the caller gave (such as `order_id` in `extra=`) win over derived ones. The SDK's
    private extras (`__temporal_error_identifier`) are dropped.
    """
    for key in [key for key in event_dict if key.startswith("__")]:
        del event_dict[key]
    details = event_dict.pop("temporal_workflow", None)
    if isinstance(details, dict):
        fields = saga_ids(str(details.get("workflow_id", "")), str(details.get("run_id", "")))
        fields["workflow_type"] = str(details.get("workflow_type", ""))
        if "update_name" in details:
            fields["update"] = str(details["update_name"])
        for key, value in fields.items():
            event_dict.setdefault(key, value)
    details = event_dict.pop("temporal_activity", None)
    if isinstance(details, dict):  # the SDK's own lines about an activity
        about = _activity_fields(
            str(details.get("workflow_id") or ""),
            str(details.get("workflow_run_id") or ""),
            details.get("activity_type"),
            details.get("attempt"),
        )
    elif activity.in_activity():  # a line logged while an activity runs
        info = activity.info()
        about = _activity_fields(
            info.workflow_id or "", info.workflow_run_id or "", info.activity_type, info.attempt
        )
    else:
        return event_dict
    for key, value in about.items():
        event_dict.setdefault(key, value)
    return event_dict


def _activity_fields(
    workflow_id: str, run_id: str, activity_type: Any, attempt: Any
) -> dict[str, Any]:
    """The fields of a line about an activity: its saga's ids, its type and its try."""
    return saga_ids(workflow_id, run_id) | {"activity_type": activity_type, "attempt": attempt}


def quiet_sdk_messages() -> None:
    """Stop the SDK's loggers appending their info to each message: it is in fields instead."""
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False


class ActivityOutcomes(Interceptor):
    """A worker interceptor: each activity's duration at debug, and a refusal in one line.

    A refusal is a service's final "no" (`ApplicationErrorCategory.BENIGN`), the customer's
    business, not a fault: the SDK logs it at debug, so the one line about it is this one,
    with no traceback. Faults keep the SDK's warning and traceback.
    """

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap each activity's execution."""
        return _LogOutcome(next)


class _LogOutcome(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        started = time.monotonic()
        try:
            result = await super().execute_activity(input)
        except ApplicationError as err:
            if err.category is ApplicationErrorCategory.BENIGN:
                log.info("activity refused", refusal=err.type, reason=err.message)
            raise
        # Debug: the saga logs each step done, and the SDK's metrics time every activity;
        # at info, these lines were a twentieth of a busy worker's CPU.
        log.debug("activity done", duration_ms=round((time.monotonic() - started) * 1000, 1))
        return result
