"""The monitoring files of a bake: alert rules Prometheus accepts, a dashboard Grafana can load,
and both asking only for metrics the service exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import Bake, bake_api

PROMTOOL = shutil.which("promtool")
# Metrics from outside the service: Prometheus' own `up` and kube-state-metrics' readiness.
PLATFORM_METRICS = {"up", "kube_pod_status_ready"}
# BentoML's request metrics (docs/serving.md), with the series a histogram exposes.
BENTOML_METRICS = {
    "bentoml_service_request_total",
    "bentoml_service_request_duration_seconds_bucket",
    "bentoml_service_request_duration_seconds_sum",
    "bentoml_service_request_duration_seconds_count",
}
METRIC = re.compile(r"\b([a-z_][a-z0-9_]*)\s*\{")
FUNCTIONS = {"rate", "sum", "histogram_quantile", "absent", "increase", "by", "label_values"}


@pytest.fixture(scope="module")
def bake(tmp_path_factory: pytest.TempPathFactory) -> Bake:
    return bake_api(tmp_path_factory.mktemp("monitoring"), {})


def service_metrics(bake: Bake) -> set[str]:
    """The series the service's own Counters and Histograms export (read from service.py)."""
    package = bake.answers["package_name"]
    source = (bake.path / "src" / package / "serving" / "service.py").read_text(encoding="utf-8")
    names: set[str] = set()
    for kind, name in re.findall(r'\b(Counter|Histogram)\(\s*"(\w+)"', source):
        if kind == "Counter":
            names.add(f"{name}_total")
        else:
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    assert names, "no metrics found in service.py"
    return names


def metrics_in(expression: str) -> set[str]:
    return {name for name in METRIC.findall(expression) if name not in FUNCTIONS}


def alert_expressions(bake: Bake) -> dict[str, str]:
    rules = yaml.safe_load((bake.path / "deploy/monitoring/alerts.yaml").read_text())
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


def dashboard_expressions(bake: Bake) -> dict[str, str]:
    dashboard = json.loads((bake.path / "deploy/monitoring/dashboard.json").read_text())
    return {
        f"{panel['title']} {target['refId']}": target["expr"]
        for panel in dashboard["panels"]
        for target in panel["targets"]
    }


def test_alert_rules_pass_promtool(bake: Bake) -> None:
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`)")
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(bake.path / "deploy/monitoring/alerts.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_queries_use_only_metrics_the_service_exports(bake: Bake, source: str) -> None:
    known = service_metrics(bake) | BENTOML_METRICS | PLATFORM_METRICS
    expressions = alert_expressions(bake) if source == "alerts" else dashboard_expressions(bake)
    assert expressions
    for name, expression in expressions.items():
        used = metrics_in(expression)
        assert used, f"{name}: no metric in {expression!r}"
        assert used <= known, f"{name}: unknown metrics {sorted(used - known)}"


def test_every_service_metric_is_alerted_on_or_charted(bake: Bake) -> None:
    charted = set().union(*map(metrics_in, dashboard_expressions(bake).values()))
    counters = {name for name in service_metrics(bake) if name.endswith("_total")}
    assert counters <= charted, f"not on the dashboard: {sorted(counters - charted)}"


def test_the_alerts_cover_errors_latency_fallback_readiness_and_range(bake: Bake) -> None:
    expressions = " ".join(alert_expressions(bake).values())
    for needle in (
        'http_response_code=~"5.."',
        "histogram_quantile(0.95",
        "model_fallback_total",
        "kube_pod_status_ready",
        "model_out_of_range_values_total",
    ):
        assert needle in expressions, needle


def test_monitoring_no_bakes_no_monitoring_files(tmp_path: Path) -> None:
    bake = bake_api(tmp_path, {"monitoring": "no"})
    assert not (bake.path / "deploy/monitoring").exists()
    assert not (bake.path / ".github/workflows/monitor.yml").exists()
    assert not (bake.path / "docs/monitoring.md").exists()
    # The drift command stays: it is useful without the scheduled workflow.
    assert (bake.path / "src" / bake.answers["package_name"] / "monitoring" / "drift.py").is_file()


def test_every_runbook_link_names_a_doc_and_a_heading_of_the_bake(bake: Bake) -> None:
    """`runbook: docs/x.md#anchor`: the file is in the bake and has a heading with that anchor
    (mkdocs' slug: lowercase, punctuation dropped, spaces to hyphens)."""
    rules = yaml.safe_load((bake.path / "deploy/monitoring/alerts.yaml").read_text())
    for rule in (rule for group in rules["groups"] for rule in group["rules"]):
        path, _, anchor = rule["annotations"]["runbook"].partition("#")
        doc = bake.path / path
        assert doc.is_file(), f"{rule['alert']}: {path} is not in the bake"
        headings = re.findall(r"(?m)^#+ (.+)$", doc.read_text(encoding="utf-8"))
        slugs = {
            re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", h).strip().lower()) for h in headings
        }
        assert not anchor or anchor in slugs, f"{rule['alert']}: no heading #{anchor} in {path}"
