"""Drift: a batch like the training data passes; a shifted one is caught and named, weighed by
the model's importance and checked through the model's predictions; a batch too small for a
verdict gets exit code 2 and a message instead of one."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from {{ cookiecutter.package_name }}.cli import app
from {{ cookiecutter.package_name }}.core.config import load_params
from {{ cookiecutter.package_name }}.core.contract import Observed
from {{ cookiecutter.package_name }}.monitoring.drift import numeric_drift

PROJECT_ROOT = Path(__file__).resolve().parents[1]


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


def test_drift_counts_the_rows_the_contracts_pandera_schema_refuses(
    make_project, sample, tmp_path, add_schema_rule
):
    """Drift checks rows with the pandera schema validate and `predict` use (to_pandera): a
    rule added to the schema is counted here with no code of drift's changed, row by row."""
    project = make_project("binary_classification")
    prepare(project)
    add_schema_rule()
    frame = sample(project.task, 600, seed=7).astype({"income": object})
    frame.loc[[4, 9], "age"] = 33.25
    frame.loc[2, "income"] = "lots"  # text in a numeric column: the row is named, not hidden
    result, report = drift(batch(tmp_path / "rule.csv", frame))
    quality = report["quality"]
    assert quality["rows_breaking_the_contract"] == 3, result.output
    assert quality["broken_rules_by_column"] == {"age": 2, "income": 1}
    assert quality["examples"] == [
        "record 2, field 'income': 'lots' is not a number",
        "record 4, field 'age': 33.25 breaks the rule age_not_33.25",
        "record 9, field 'age': 33.25 breaks the rule age_not_33.25",
    ]


@pytest.mark.parametrize("rows", [0, 10])
def test_a_tiny_or_empty_batch_gets_exit_code_2_not_a_verdict(make_project, sample, tmp_path, rows):
    project = make_project("binary_classification")
    prepare(project)
    first, _ = drift(batch(tmp_path / "full.csv", sample(project.task, 600, seed=7)))
    assert first.exit_code == 0, first.output
    result, report = drift(batch(tmp_path / "tiny.csv", sample(project.task, 600).head(rows)))
    assert result.exit_code == 2, "exit 2 (no verdict) is not exit 1 (drift)"
    assert f"has {rows} rows" in result.output and "monitor.min_rows" in result.output
    assert report == {}, "the earlier batch's report is not left to pass for this one's"
    assert not Path("reports/drift.html").exists()


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


def one_feature_frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """A binary target that depends on `x` alone, beside three features that carry no signal."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, rows)
    frame = pd.DataFrame(
        {
            "x": x.round(3),
            "noise": rng.normal(0, 1, rows).round(3),
            "other": rng.lognormal(0, 0.5, rows).round(3),
            "colour": rng.choice(["red", "green", "blue"], rows),
        }
    )
    frame["target"] = ((x + rng.normal(0, 0.3, rows)) > 0).astype(np.int64)
    return frame


def trained(make_project, frame: pd.DataFrame) -> Any:
    project = make_project("binary_classification")
    project.write_data(frame)
    prepare(project, "train", "evaluate --no-track")
    return project


def training_sample(rows: int, seed: int = 0) -> pd.DataFrame:
    """Rows of the training split itself: the same distribution by construction."""
    frame = pd.read_parquet("data/processed/train.parquet")
    return frame.sample(n=min(rows, len(frame)), random_state=seed).reset_index(drop=True)


def test_a_sample_of_the_training_data_does_not_drift_and_its_predictions_are_checked(
    make_project, tmp_path
):
    trained(make_project, one_feature_frame())
    result, report = drift(batch(tmp_path / "same.csv", training_sample(300)))
    assert result.exit_code == 0, result.output
    assert report["drift"] is False and report["drifted_features"] == [], report["reasons"]
    assert report["importance"]["source"] == str(Path("plots/importance.csv"))
    assert report["importance"]["top_features"][0] == "x"
    prediction = report["prediction"]
    assert prediction["source"] == "the candidate model on the batch", prediction
    assert prediction["test"] == "psi" and prediction["drift"] is False


def test_a_two_sd_shift_of_the_most_important_feature_drifts(make_project, tmp_path):
    trained(make_project, one_feature_frame())
    frame = training_sample(300)
    frame["x"] = frame["x"] + 2 * frame["x"].std()
    result, report = drift(batch(tmp_path / "shifted.csv", frame))
    assert result.exit_code == 1, result.output
    assert report["drifted_features"] == ["x"]
    assert report["drifted_share"] < report["threshold_share"], "one feature of four"
    assert "important features drifted: x" in result.output
    assert report["prediction"]["drift"] is True, "the model's predictions moved with x"


def test_a_shift_of_a_feature_the_model_ignores_alone_does_not_drift(make_project, tmp_path):
    trained(make_project, one_feature_frame())
    frame = training_sample(300)
    frame["noise"] = frame["noise"] + 2
    result, report = drift(batch(tmp_path / "noise.csv", frame))
    assert report["drifted_features"] == ["noise"]
    assert report["features"]["noise"]["weight"] < report["threshold_share"]
    assert result.exit_code == 0, result.output


def test_the_share_outside_the_observed_range_is_reported_and_can_drift(make_project):
    """A few rows in another unit (x1000) barely move the KS statistic; the share of values
    outside the range seen in training catches them, and stays small on the same data."""
    make_project("binary_classification")
    params = load_params()
    rng = np.random.default_rng(0)
    reference = pd.Series(rng.normal(50, 10, 1000))
    observed = Observed(min=float(reference.min()), max=float(reference.max()))
    same = numeric_drift(reference, pd.Series(rng.normal(50, 10, 1000)), params, observed)
    assert same["drift"] is False and same["outside_range_share"] < 0.01
    current = pd.Series(rng.normal(50, 10, 1000))
    current[:80] *= 1000
    moved = numeric_drift(reference, current, params, observed)
    assert moved["statistic"] < params.monitor.min_ks, "KS alone would not flag it"
    assert moved["outside_range_share"] == 0.08 and moved["drift"] is True
    assert "monitor.outside_range" in moved["note"]
    assert moved["observed_range"] == [observed.min, observed.max]


def test_an_important_feature_partly_out_of_range_drifts_the_batch(make_project, tmp_path):
    trained(make_project, one_feature_frame())
    frame = training_sample(300)
    frame.loc[frame.index[:30], "x"] = frame["x"][:30] * 1000  # 10% of rows in another unit
    result, report = drift(batch(tmp_path / "units.csv", frame))
    assert report["drifted_features"] == ["x"]
    assert report["features"]["x"]["outside_range_share"] >= 0.09
    assert report["features"]["x"]["statistic"] < 0.1, "the KS test alone would not see it"
    assert result.exit_code == 1, result.output
    assert report["features"]["noise"]["outside_range_share"] == 0.0


def test_high_cardinality_and_nearly_empty_categoricals_do_not_drift_on_training_rows(
    make_project, tmp_path
):
    rng = np.random.default_rng(1)
    frame = one_feature_frame(800, seed=1)
    frame["city"] = [f"city-{value}" for value in rng.zipf(1.3, len(frame)) % 400]
    frame["code"] = rng.choice(["a", "b", "c", "d"], len(frame))
    frame.loc[rng.random(len(frame)) < 0.93, "code"] = None  # nearly empty
    trained(make_project, frame)
    result, report = drift(batch(tmp_path / "same.csv", training_sample(300, seed=2)))
    assert result.exit_code == 0, result.output
    assert report["drifted_features"] == [], report["features"]
    city, code = report["features"]["city"], report["features"]["code"]
    assert city["test"] == "psi" and "(other)" in city["largest_changes"]
    assert code["skipped"] is True and "fewer than 30" in code["note"]


def test_a_new_category_that_takes_over_a_high_cardinality_column_is_flagged(
    make_project, tmp_path
):
    rng = np.random.default_rng(1)
    frame = one_feature_frame(800, seed=1)
    frame["city"] = [f"city-{value}" for value in rng.zipf(1.3, len(frame)) % 400]
    trained(make_project, frame)
    shifted = training_sample(300, seed=2)
    shifted.loc[shifted.index[:150], "city"] = "city-new"
    _, report = drift(batch(tmp_path / "new.csv", shifted))
    assert "city" in report["drifted_features"]
    assert report["features"]["city"]["largest_changes"]["(other)"]["current"] > 0.5


def test_the_drift_reports_are_ignored_by_git(tmp_path):
    """`drift` writes reports/drift.*: the project's .gitignore keeps them out of `git status`."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    paths = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8"))["paths"]
    shutil.copy(PROJECT_ROOT / ".gitignore", tmp_path / ".gitignore")
    subprocess.run([git, "init", "-q", str(tmp_path)], check=True)
    for key in ("drift_report", "drift_html"):
        ignored = subprocess.run(
            [git, "-C", str(tmp_path), "check-ignore", "-q", "--no-index", paths[key]],
            check=False,
        )
        assert ignored.returncode == 0, f"{paths[key]} is not git-ignored"
