"""The metric names a PromQL expression reads, and the expressions of the deploy/ files."""

from __future__ import annotations

import json
import re

import yaml

from tests.support.paths import ROOT

DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "order-saga.json"

_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool"}
)
#: Parts of an expression that hold no metric name: strings, label matchers, ranges, and the
#: label lists of aggregations and vector matching.
_NOT_NAMES = re.compile(
    r'"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]|\b(?:by|without|on|ignoring)\s*\([^)]*\)'
)
_IDENTIFIER = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """Every metric an expression reads (functions, keywords and labels left out)."""
    return {name for name in _IDENTIFIER.findall(_NOT_NAMES.sub(" ", expr))} - _KEYWORDS


def alert_exprs() -> dict[str, str]:
    """Each alert rule's expression, by alert name."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def dashboard_exprs() -> dict[str, list[str]]:
    """Each dashboard panel's expressions, by panel title, with Grafana's variables filled in."""
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        panel["title"]: [
            target["expr"].replace("$__rate_interval", "5m").replace("$__range", "1h")
            for target in panel["targets"]
        ]
        for panel in dashboard["panels"]
    }


def deploy_metric_names() -> set[str]:
    """Every metric the alerts and the dashboard read."""
    exprs = [*alert_exprs().values()]
    for panel_exprs in dashboard_exprs().values():
        exprs.extend(panel_exprs)
    return set().union(*(metric_names(expr) for expr in exprs))
