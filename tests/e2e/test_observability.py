"""Metrics, traces and logs of a real worker after a known mix of orders.

The mix: 7 confirmed (one placed by `starter.py`), 2 declined cards, 1 undeliverable address,
1 sold-out SKU, and 2 caught while Shipping worked, 1 withdrawn and 1 cancelled, on a worker
process with metrics, span files and JSON logs on.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Replayer

from domain.ids import workflow_id_for
from infra.metrics import SAGA_COUNTERS
from tests.support.observed_stack import TASK_QUEUE, Mix, observed_mix
from tests.support.orders import STEPS
from tests.support.prometheus_text import Sample, parse, total
from tests.support.promql_names import deploy_metric_names
from workflows import OrderSaga


@pytest.fixture(scope="module")
async def mix(
    client: Client, dev_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Mix]:
    async with observed_mix(client, dev_server.address, tmp_path_factory.mktemp("obs")) as mix:
        yield mix


@pytest.fixture(scope="module")
async def metrics(mix: Mix) -> list[Sample]:
    async with httpx.AsyncClient() as http:
        response = await http.get(mix.metrics_url)
    response.raise_for_status()
    return [s for s in parse(response.text) if s.labels.get("task_queue", TASK_QUEUE) == TASK_QUEUE]


# --- Metrics ----------------------------------------------------------------------------------


async def test_endpoint_serves_the_sdks_metrics(metrics: list[Sample]) -> None:
    assert total(metrics, "temporal_workflow_completed", workflow_type="OrderSaga") == 7
    assert total(metrics, "temporal_workflow_failed", workflow_type="OrderSaga") == 5
    assert total(metrics, "temporal_workflow_canceled", workflow_type="OrderSaga") == 1
    # The mix's four refusals are the business's answers, not failures (benign): the SDK
    # counts faults only, and this mix has none.
    assert total(metrics, "temporal_activity_execution_failed") == 0
    assert any(s.name == "temporal_worker_task_slots_available" for s in metrics)


async def test_saga_counters_match_the_mix(mix: Mix, metrics: list[Sample]) -> None:
    assert total(metrics, "saga_started") == 13
    assert total(metrics, "saga_completed") == 7
    # The withdrawal and the cancellation came while Shipping worked: Shipping is not blamed.
    assert total(metrics, "saga_aborted") == 3
    assert total(metrics, "saga_withdrawn", failed_step="", reason_type="OrderWithdrawn") == 1
    assert total(metrics, "saga_cancelled", failed_step="", reason_type="Cancelled") == 1
    assert total(metrics, "saga_aborted", failed_step="charge_payment") == 2
    assert total(metrics, "saga_aborted", reason_type="PaymentDeclined") == 2
    assert total(metrics, "saga_aborted", failed_step="schedule_shipment") == 1
    assert total(metrics, "saga_aborted", reason_type="ShippingUnavailable") == 1
    assert total(metrics, "saga_failed", failed_step="reserve_inventory") == 1
    assert total(metrics, "saga_failed", reason_type="OutOfStock") == 1
    assert total(metrics, "saga_compensations", compensation="release_inventory") == 5
    assert total(metrics, "saga_compensations", compensation="refund_payment") == 3
    assert total(metrics, "saga_compensations", compensation="cancel_shipment") == 2
    assert total(metrics, "saga_compensations") == 10
    assert total(metrics, "saga_compensations_failed") == 0
    assert total(metrics, "saga_needs_attention") == 0
    revenue = sum(order.total for order in mix.confirmed)
    assert total(metrics, "saga_revenue", currency="USD") == revenue
    active = sum(
        total(metrics, name) * sign
        for name, sign in (
            ("saga_started", 1),
            ("saga_completed", -1),
            ("saga_aborted", -1),
            ("saga_failed", -1),
            ("saga_withdrawn", -1),
            ("saga_cancelled", -1),
        )
    )
    assert active == 0


async def test_saga_histograms_match_the_mix(metrics: list[Sample]) -> None:
    for outcome, count in (
        ("confirmed", 7),
        ("aborted", 3),
        ("failed", 1),
        ("withdrawn", 1),
        ("cancelled", 1),
    ):
        assert total(metrics, "saga_duration_count", outcome=outcome) == count
        assert total(metrics, "saga_duration_bucket", outcome=outcome, le="+Inf") == count
    # Seconds, not milliseconds: a saga on the dev server takes well under a minute.
    assert 0 < total(metrics, "saga_duration_sum", outcome="confirmed") < 7 * 60
    for step, ok, failed, cancelled in (
        ("reserve_inventory", 12, 1, 0),
        ("charge_payment", 10, 2, 0),
        ("schedule_shipment", 7, 1, 2),  # the two interrupted: cancelled, not failed
        ("confirm_order", 7, 0, 0),
    ):
        for outcome, count in (("ok", ok), ("failed", failed), ("cancelled", cancelled)):
            assert total(metrics, "saga_step_duration_count", step=step, outcome=outcome) == count


async def test_every_saga_counter_is_exposed_by_name(metrics: list[Sample]) -> None:
    # Counters never incremented in this mix are absent; those incremented carry their name
    # as is: no prefix, no `_total` suffix (what the dashboard and alerts rely on).
    names = {s.name for s in metrics}
    incremented = set(SAGA_COUNTERS) - {
        "saga_compensations_failed",
        "saga_needs_attention",
        "saga_attention_resolved",
        "saga_refused",
    }
    assert incremented <= names


async def test_the_dashboard_and_alerts_read_metrics_the_worker_serves(
    metrics: list[Sample],
) -> None:
    served = {s.name for s in metrics}
    # Counters this mix never increments (it has refusals but no fault), and Prometheus' own `up`.
    not_in_mix = {
        "saga_compensations_failed",
        "saga_needs_attention",
        "saga_attention_resolved",
        "temporal_activity_execution_failed",
    }
    assert deploy_metric_names() - not_in_mix - {"up"} <= served


# --- Traces -----------------------------------------------------------------------------------


async def test_one_trace_runs_from_the_starter_to_the_service_handlers(mix: Mix) -> None:
    spans = mix.spans()
    roots = [
        s
        for s in spans
        if s["name"] == "place order" and s["attributes"].get("order_id") == mix.traced_order_id
    ]
    assert len(roots) == 1
    trace_id = roots[0]["context"]["trace_id"]
    in_trace = [s for s in spans if s["context"]["trace_id"] == trace_id]
    by_service = Counter(s["resource"]["attributes"]["service.name"] for s in in_trace)
    assert set(by_service) == {"order-saga-starter", "order-saga-worker", "order-saga-services"}
    names = {s["name"] for s in in_trace}
    steps = STEPS
    assert {"StartWorkflow:OrderSaga", "RunWorkflow:OrderSaga"} <= names
    assert {f"StartActivity:{step}" for step in steps} <= names
    assert {f"RunActivity:{step}" for step in steps} <= names
    handlers = [
        s["attributes"]["http.route"]
        for s in in_trace
        if s["resource"]["attributes"]["service.name"] == "order-saga-services"
        and s["kind"] == "SpanKind.SERVER"
    ]
    # Tokenizing the card (from the starter), then the four steps (from the activities).
    assert sorted(handlers) == sorted(
        [
            "/payment/tokens",
            "/inventory/reservations",
            "/payment/charges",
            "/shipping/shipments",
            "/orders/confirmations",
        ]
    )
    # The worker's log lines of its activities name the trace, so one leads to the other (the
    # SDK's own "Starting activity" comes before the activity's span).
    activity_lines = [
        line
        for line in mix.worker_log()
        if line.get("order_id") == mix.traced_order_id and line["event"] == "activity done"
    ]
    assert activity_lines
    assert {line.get("trace_id") for line in activity_lines} == {trace_id.removeprefix("0x")}
    # Every span about this order's workflow is in this trace, none in another.
    workflow_id = workflow_id_for(mix.traced_order_id)
    about = [s for s in spans if s["attributes"].get("temporalWorkflowID") == workflow_id]
    assert about and {s["context"]["trace_id"] for s in about} == {trace_id}


#: What the SDK appends to a message when it is told to put its info there: ` ({'activity_id':
#: ...})`. (Not just "({": the SDK's debug lines print payloads, whose bytes may hold anything.)
SDK_INFO_SUFFIX = re.compile(r" \(\{'\w+': ")

# --- Logs -------------------------------------------------------------------------------------


async def test_every_line_of_a_saga_carries_its_ids(mix: Mix) -> None:
    lines = mix.worker_log()
    for order in mix.all:
        workflow_id = workflow_id_for(order.order_id)
        mine = [
            line
            for line in lines
            if line.get("order_id") == order.order_id or line.get("workflow_id") == workflow_id
        ]
        assert any(line["event"] == "Order saga started" for line in mine), order.order_id
        assert any(line.get("activity_type") == "reserve_inventory" for line in mine)
        run_ids = {line.get("run_id") for line in mine}
        assert len(run_ids) == 1 and None not in run_ids and "" not in run_ids
        for line in mine:
            assert line["order_id"] == order.order_id, line
            assert line["workflow_id"] == workflow_id, line
            if "activity_type" in line:
                assert isinstance(line["attempt"], int), line
            # The SDK's info dict is in fields, not appended to the message.
            assert not SDK_INFO_SUFFIX.search(line["event"]), line


async def test_workflow_lines_are_logged_once_and_not_on_replay(
    mix: Mix, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    lines = mix.worker_log()
    workflow_lines = Counter(
        (line["order_id"], line["event"], line.get("step"), line.get("compensation"))
        for line in lines
        if line.get("logger") == "temporalio.workflow"
    )
    assert workflow_lines, "no workflow lines"
    assert max(workflow_lines.values()) == 1, workflow_lines.most_common(3)

    # Replaying whole histories logs nothing: the workflow logger is silent during replay.
    order = mix.unserved[0]
    history = await client.get_workflow_handle(workflow_id_for(order.order_id)).fetch_history()
    replayer = Replayer(workflows=[OrderSaga], data_converter=client.data_converter)
    with caplog.at_level(logging.DEBUG, logger="temporalio.workflow"):
        await replayer.replay_workflow(history)
    assert [r for r in caplog.records if r.name == "temporalio.workflow"] == []
