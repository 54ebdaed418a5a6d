"""The promotion rule: each check as a pure function, then the gate stage on a useless model."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from {{ cookiecutter.package_name }}.cli import app
from {{ cookiecutter.package_name }}.config import load_params
from {{ cookiecutter.package_name }}.gate import (
    FAIL,
    PASS,
    SKIP,
    Check,
    check_beats_baseline,
    check_budget,
    check_champion,
    check_sanity,
    decide,
    p95_latency_ms,
    render_markdown,
    run_gate,
)
from {{ cookiecutter.package_name }}.registry import (
    promote_to_champion,
    register_candidate,
)

CHECK_NAMES = ("beats_baseline", "not_worse_than_champion", "latency_p95", "model_size", "sanity")
runner = CliRunner()


def improvement(point: float, lower: float, upper: float) -> dict[str, float]:
    return {"improvement": point, "lower": lower, "upper": upper}


def passing_checks() -> list[Check]:
    """Every check but the champion's, passing."""
    return [
        check_beats_baseline(improvement(0.05, 0.02, 0.08), 0.0),
        check_budget("latency_p95", 3.0, 50, "ms"),
        check_budget("model_size", 0.4, 50, "MB"),
        check_sanity({"candidate": {"roc_auc": 0.9}}, 200, 50),
    ]


# check 1: beats the baseline


def test_improved_candidate_beats_baseline():
    check = check_beats_baseline(improvement(0.05, 0.02, 0.08), 0.01)
    assert check.status == PASS
    assert check.value == {"improvement": 0.05, "ci_lower": 0.02, "ci_upper": 0.08}


def test_improvement_exactly_at_the_minimum_passes():
    assert check_beats_baseline(improvement(0.01, 0.001, 0.02), 0.01).status == PASS


def test_improvement_below_the_minimum_fails_saying_so():
    check = check_beats_baseline(improvement(0.005, 0.001, 0.01), 0.01)
    assert check.status == FAIL
    assert "below" in check.detail


def test_degraded_candidate_fails():
    check = check_beats_baseline(improvement(-0.04, -0.07, -0.01), 0.0)
    assert check.status == FAIL
    assert "below" in check.detail


@pytest.mark.parametrize("lower", [-0.002, 0.0])
def test_interval_reaching_zero_fails_as_noise(lower):
    check = check_beats_baseline(improvement(0.03, lower, 0.06), 0.0)
    assert check.status == FAIL
    assert "noise" in check.detail


def test_tie_within_noise_fails():
    check = check_beats_baseline(improvement(0.001, -0.01, 0.012), 0.0)
    assert check.status == FAIL
    assert "noise" in check.detail


# check 2: not worse than the champion


def test_no_champion_is_skipped_and_does_not_block():
    check = check_champion(None, 0.005)
    assert check.status == SKIP
    assert "no champion" in check.detail
    verdict = decide([check, *passing_checks()])
    assert verdict["decision"] == "promote"
    assert verdict["failed_checks"] == []


def test_non_inferior_candidate_passes_the_champion_check():
    comparison = {"version": 3, "improvement": -0.001, "lower": -0.004, "upper": 0.002}
    check = check_champion(comparison, 0.005)
    assert check.status == PASS
    assert check.value["champion_version"] == 3
    assert "v3" in check.detail


@pytest.mark.parametrize("lower", [-0.0051, -0.005])
def test_lower_bound_at_or_below_minus_max_regression_fails(lower):
    comparison = {"version": 2, "improvement": 0.0, "lower": lower, "upper": 0.004}
    check = check_champion(comparison, 0.005)
    assert check.status == FAIL
    assert "worse than the champion" in check.detail


def test_champion_that_cannot_score_fails_with_its_error():
    comparison = {"version": 4, "error": "ValueError: column 'plan' is missing"}
    check = check_champion(comparison, 0.005)
    assert check.status == FAIL
    assert "v4" in check.detail
    assert "ValueError: column 'plan' is missing" in check.detail


# checks 3 and 4: budgets


@pytest.mark.parametrize(
    ("value", "status"), [(49.99, PASS), (50.0, PASS), (50.0001, FAIL), (120.0, FAIL)]
)
def test_budget_passes_up_to_and_including_the_limit(value, status):
    check = check_budget("latency_p95", value, 50, "ms")
    assert check.status == status
    assert check.threshold == 50
    assert ("over budget" in check.detail) is (status == FAIL)


# check 5: sanity


@pytest.mark.parametrize("bad", [float("nan"), None])
def test_sanity_fails_on_a_missing_metric(bad):
    metrics = {"baseline": {"roc_auc": 0.7}, "candidate": {"roc_auc": bad, "log_loss": 0.4}}
    check = check_sanity(metrics, 200, 50)
    assert check.status == FAIL
    assert check.value["nan_metrics"] == ["candidate.roc_auc"]
    assert "candidate.roc_auc" in check.detail


@pytest.mark.parametrize(("rows", "status"), [(49, FAIL), (50, PASS), (51, PASS)])
def test_sanity_needs_enough_holdout_rows(rows, status):
    check = check_sanity({"candidate": {"rmse": 1.5}}, rows, 50)
    assert check.status == status
    if status == FAIL:
        assert "fewer than 50" in check.detail


def test_sanity_reports_every_problem():
    check = check_sanity({"candidate": {"rmse": math.nan}}, 10, 50)
    assert check.status == FAIL
    assert "NaN" in check.detail
    assert "10 rows" in check.detail


# the decision and its report


def test_decide_lists_exactly_the_failed_checks_in_order():
    checks = [
        check_beats_baseline(improvement(0.001, -0.01, 0.012), 0.0),
        check_champion(None, 0.005),
        check_budget("latency_p95", 3.0, 50, "ms"),
        check_budget("model_size", 80.0, 50, "MB"),
        check_sanity({"candidate": {"roc_auc": 0.8}}, 200, 50),
    ]
    verdict = decide(checks)
    assert verdict["decision"] == "reject"
    assert verdict["failed_checks"] == ["beats_baseline", "model_size"]
    assert [check["name"] for check in verdict["checks"]] == list(CHECK_NAMES)
    assert [check["status"] for check in verdict["checks"]] == [FAIL, SKIP, PASS, FAIL, PASS]
    json.dumps(verdict)  # the report is written as JSON


@pytest.mark.parametrize("promote", [True, False])
def test_markdown_names_every_check_and_the_verdict(promote):
    beats = improvement(0.05, 0.02, 0.08) if promote else improvement(0.001, -0.01, 0.012)
    checks = [
        check_beats_baseline(beats, 0.0),
        check_champion(None, 0.005),
        check_budget("latency_p95", 3.0, 50, "ms"),
        check_budget("model_size", 0.4, 50, "MB"),
        check_sanity({"candidate": {"roc_auc": 0.9}}, 200, 50),
    ]
    report = {"primary_metric": "roc_auc", "holdout_rows": 200, **decide(checks)}
    markdown = render_markdown(report)
    for name in CHECK_NAMES:
        assert f"| {name} |" in markdown
    assert "roc_auc" in markdown
    assert "200 holdout rows" in markdown
    first = markdown.splitlines()[0]
    if promote:
        assert "**promote**" in first
    else:
        assert "do not promote" in first
        assert "beats_baseline" in first


def test_p95_latency_warms_up_then_times_every_repeat():
    calls = []
    latency = p95_latency_ms(calls.append, list(range(10)), repeats=40)
    assert len(calls) == 5 + 40
    assert calls[5:] == [i % 10 for i in range(40)]
    assert 0.0 <= latency < 1000.0


# the stage, end to end


def run_stage(*args: str):
    return runner.invoke(app, [*args, "--params", "params.yaml"])


def test_champion_is_scored_against_the_candidate_for_every_task(make_project, task):
    """The registered champion, loaded back from MLflow, scores the holdout like the candidate
    it was: compared with itself the difference is exactly zero, so the check passes."""
    make_project(task)
    for stage in ("ingest", "validate", "split", "train", "evaluate"):
        result = run_stage(stage)
        assert result.exit_code == 0, f"{stage}: {result.output}"
    params = load_params()
    passed = {"decision": "promote", "failed_checks": [], "checks": []}
    assert register_candidate(params, passed)["version"] == 1
    promote_to_champion(params, None)

    report = run_gate(params)
    check = next(c for c in report["checks"] if c["name"] == "not_worse_than_champion")
    assert check["status"] == PASS, check["detail"]
    assert check["value"]["champion_version"] == 1
    assert check["value"]["improvement"] == 0.0
    assert check["value"]["ci_lower"] == check["value"]["ci_upper"] == 0.0


def test_candidate_trained_on_shuffled_labels_is_rejected(interaction_project):
    """The candidate that passes on this data, retrained on shuffled labels, fails
    beats_baseline: `gate` exits 1 naming the check, `gate --report-only` (the DVC stage)
    exits 0 and still writes both reports."""
    project = interaction_project
    assert run_gate(project.params())["decision"] == "promote"  # the real candidate passes

    train_file = project.root / "data/processed/train.parquet"
    train = pd.read_parquet(train_file)
    rng = np.random.default_rng(0)
    train["target"] = rng.permutation(train["target"].to_numpy())
    train.to_parquet(train_file, index=False)
    for stage in ("train", "evaluate"):
        result = run_stage(stage)
        assert result.exit_code == 0, f"{stage}: {result.output}"

    report = run_gate(project.params())
    assert report["decision"] == "reject"
    assert report["failed_checks"] == ["beats_baseline"]
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert statuses["not_worse_than_champion"] == SKIP  # nothing registered: no champion

    gate_json = project.root / "reports/gate.json"
    gate_md = project.root / "reports/gate.md"
    gate_json.unlink()
    gate_md.unlink()
    result = run_stage("gate")
    assert result.exit_code == 1
    assert "error: do not promote" in result.stderr
    assert "beats_baseline" in result.stderr
    assert "Traceback" not in result.output
    assert gate_json.is_file()

    gate_json.unlink()
    gate_md.unlink()
    result = run_stage("gate", "--report-only")
    assert result.exit_code == 0, result.output
    assert "do not promote" in result.stdout
    written = json.loads(gate_json.read_text())
    assert written["decision"] == "reject"
    assert "beats_baseline" in written["failed_checks"]
    assert "beats_baseline" in gate_md.read_text()
