"""The compose stack's Prometheus config, alert rules and Grafana dashboard are valid and read
only metrics that exist.

`promtool` (Debian package `prometheus`, installed by `.ci/run`) checks the config and runs the
alert rules' unit tests (deploy/prometheus/alerts.test.yml); the rest needs nothing installed.
That the worker really serves these names is checked against a live worker in
test_observability.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.metrics import SAGA_COUNTERS, SAGA_HISTOGRAMS, exposed_names
from tests.support.promql_names import (
    DASHBOARD,
    DEPLOY,
    alert_exprs,
    dashboard_exprs,
    deploy_metric_names,
    metric_names,
)

PROMETHEUS = DEPLOY / "prometheus"

#: The Temporal SDK's metrics the alerts and the dashboard read (the worker serves them).
SDK_METRICS = frozenset(
    {
        "temporal_activity_execution_failed",
        "temporal_activity_schedule_to_start_latency_bucket",
        "temporal_workflow_task_schedule_to_start_latency_bucket",
    }
)

SAGA_METRICS = frozenset(
    name for metric in (*SAGA_COUNTERS, *SAGA_HISTOGRAMS) for name in exposed_names(metric)
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return subprocess.run(
        [path, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_accepts_the_config_and_its_rules() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 rules found" in result.stdout


def test_each_alert_fires_on_its_case_and_none_on_a_healthy_shop() -> None:
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_workers_and_temporal() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"order-saga-worker", "temporal-server"}
    assert jobs["order-saga-worker"]["dns_sd_configs"][0]["port"] == 9464
    assert config["rule_files"] == ["alerts.yml"]


def test_alerts_cover_what_the_business_asked() -> None:
    alerts = alert_exprs()
    assert {
        "SagaSlaBreach",
        "SagaHighErrorRate",
        "SagasPilingUp",
        "SagaTasksWaitForWorkers",
        "SagaCompensationFailing",
    } <= set(alerts)
    assert "saga_duration_bucket" in metric_names(alerts["SagaSlaBreach"])
    assert "saga_compensations_failed" in metric_names(alerts["SagaCompensationFailing"])


def test_dashboard_has_the_business_figures() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "order-saga"
    panels = dashboard_exprs()
    for title in (
        "Success rate",
        "Average duration",
        "Active sagas",
        "p95 latency",
        "Error rate",
        "Compensation rate",
        "Orders / min",
        "Revenue / hour",
    ):
        assert panels.get(title), title
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "prometheus"
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert [d["uid"] for d in datasources["datasources"]] == ["prometheus"]


def test_every_expression_reads_exported_metrics_only() -> None:
    unknown = deploy_metric_names() - SAGA_METRICS - SDK_METRICS - {"up"}
    assert not unknown
    for title, exprs in dashboard_exprs().items():
        for expr in exprs:
            assert metric_names(expr), f"{title}: {expr} reads no metric"


def test_promtool_parses_every_dashboard_expression(tmp_path: Path) -> None:
    # Each panel's query as a recording rule, which `promtool check rules` parses.
    rules = [
        {"record": f"dashboard:panel_{i}:{j}", "expr": expr}
        for i, exprs in enumerate(dashboard_exprs().values())
        for j, expr in enumerate(exprs)
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
