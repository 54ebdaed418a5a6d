"""Drift: a batch like the training data passes; a shifted one is caught and named; a batch too
small for a verdict gets a message instead of one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from {{ cookiecutter.package_name }}.cli import app


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def prepare(project: Any, *stages: str) -> None:
    for stage in ("ingest", "validate", "split", *stages):
        result = cli(*stage.split())
        assert result.exit_code == 0, f"{stage}: {result.output}"


def batch(path: Path, frame: Any) -> str:
    frame.drop(columns=["target"]).to_csv(path, index=False)
    return str(path)


def drift(current: str) -> tuple[Any, dict[str, Any]]:
    result = cli("drift", "--current", current)
    report = Path("reports/drift.json")
    return result, json.loads(report.read_text()) if report.exists() else {}


def test_a_batch_from_the_same_distribution_does_not_drift(make_project, sample, tmp_path):
    project = make_project("binary_classification")
    prepare(project)
    result, report = drift(batch(tmp_path / "same.csv", sample(project.task, 600, seed=7)))
    assert result.exit_code == 0, result.output
    assert report["drift"] is False and report["drifted_features"] == []
    assert not report["quality"]["failed"]
    assert "no drift" in Path("reports/drift.html").read_text()


def test_a_shifted_batch_is_caught_and_each_shift_named(make_project, sample, tmp_path):
    project = make_project("binary_classification")
    prepare(project)
    frame = sample(project.task, 600, seed=7)
    frame["age"] = frame["age"] + 15  # a feature's mean moved
    frame["plan"] = "premium"  # a category's share changed
    shifted = frame.drop(columns=["region"])  # a column missing
    result, report = drift(batch(tmp_path / "shifted.csv", shifted))
    assert result.exit_code == 1
    assert {"age", "plan", "region"} <= set(report["drifted_features"])
    assert report["quality"]["missing_columns"] == ["region"]
    assert report["features"]["age"]["test"] == "ks" and report["features"]["plan"]["test"] == "psi"
    assert "age" in result.output and "plan" in result.output and "region" in result.output
    assert "DRIFT" in Path("reports/drift.html").read_text()


def test_rising_missing_values_fail_the_quality_check(make_project, sample, tmp_path):
    project = make_project("binary_classification")
    prepare(project)
    frame = sample(project.task, 600, seed=7)
    frame.loc[frame.index[:300], "income"] = None
    result, report = drift(batch(tmp_path / "holes.csv", frame))
    assert result.exit_code == 1
    assert list(report["quality"]["missing_values_rose"]) == ["income"]


@pytest.mark.parametrize("rows", [0, 10])
def test_a_tiny_or_empty_batch_gets_a_message_not_a_verdict(make_project, sample, tmp_path, rows):
    project = make_project("binary_classification")
    prepare(project)
    result, report = drift(batch(tmp_path / "tiny.csv", sample(project.task, 600).head(rows)))
    assert result.exit_code == 1
    assert f"has {rows} rows" in result.output and "monitor.min_rows" in result.output
    assert report == {}, "no verdict is written for a batch too small to judge"


def test_the_prediction_log_is_read_and_its_predictions_checked(make_project, sample, tmp_path):
    project = make_project("binary_classification")
    prepare(project, "train", "evaluate --no-track", "gate --write")
    frame = sample(project.task, 300, seed=3).drop(columns=["target"])
    log = tmp_path / "predictions.jsonl"
    with log.open("w") as handle:
        for record in frame.to_dict(orient="records"):
            entry = {"inputs": record, "output": {"prediction": 1}}  # one class only
            handle.write(json.dumps(entry, default=str).replace("NaN", "null") + "\n")
    result, report = drift(str(log))
    assert report["rows"] == 300 and report["drifted_features"] == []
    assert report["prediction"]["test"] == "psi" and report["prediction"]["drift"] is True
    assert result.exit_code == 1


def test_a_broken_prediction_log_names_the_line(make_project, sample, tmp_path):
    project = make_project("binary_classification")
    prepare(project)
    log = tmp_path / "predictions.jsonl"
    log.write_text('{"inputs": {}, "output": {"prediction": 1}}\nnot json\n')
    result, _ = drift(str(log))
    assert result.exit_code == 1 and "line 2" in result.output
