"""End to end: every stage through the CLI, as `dvc repro` runs them, for each task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from {{ cookiecutter.package_name }}.cli import app
from {{ cookiecutter.package_name }}.core.records import RECORDS, read_record, write_record

TASKS = ("binary_classification", "multiclass", "regression")
STAGES = ("ingest", "validate", "split", "train", "evaluate", "track")


def run_stage(stage: str):
    return CliRunner().invoke(app, [stage, "--params", "params.yaml"])


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("task", TASKS)
def test_pipeline_runs_end_to_end_and_a_bad_batch_stops_it(make_project, task):
    """All six stages succeed and leave their outputs; then a corrupt batch fails validation
    with the column's name, and the models and metrics of the last good run are untouched."""
    project = make_project(task)
    for stage in STAGES:
        result = run_stage(stage)
        assert result.exit_code == 0, f"{stage}: {result.output}"
        assert f"{stage}: " in result.stdout

    root = project.root
    intervals = json.loads((root / "metrics/intervals.json").read_text())
    primary = intervals["primary_metric"]
    improvement = intervals["candidate_vs_baseline"][primary]
    assert improvement["lower"] <= improvement["upper"]
    scores = json.loads((root / "metrics/scores.json").read_text())
    assert set(scores) == {"floor", "baseline", "candidate"}
    summary = json.loads((root / "metrics/summary.json").read_text())
    assert summary[primary]["candidate"] == round(scores["candidate"][primary], 6)
    assert set(summary[primary]) == {
        "floor",
        "baseline",
        "candidate",
        "candidate_vs_baseline",
        "baseline_vs_floor",
    }
    # What each stage wrote reads as its record and writes back byte for byte (core/records.py).
    for name, model in RECORDS.items():
        if (root / name).is_file() and name != "models/manifest.json":
            write_record(read_record(root / name, model), root / "again.json")
            assert (root / "again.json").read_bytes() == (root / name).read_bytes(), name
    table = run_stage("metrics")
    assert table.exit_code == 0, table.output
    rows = {line.split()[0]: line for line in table.stdout.splitlines()[2:]}
    assert "+ = better" in table.stdout
    assert set(rows) == set(scores["candidate"])
    assert f"{scores['candidate'][primary]:.4f} [" in rows[primary]
    assert (root / "reports/predictions.parquet").is_file()
    assert (root / "plots/importance.csv").is_file()
    if task == "regression":
        assert (root / "plots/residuals.csv").is_file()
    else:
        assert (root / "plots/confusion.csv").is_file()
    if task == "binary_classification":
        for curve in ("roc", "precision_recall"):
            for model in ("baseline", "candidate"):
                assert (root / "plots" / curve / f"{model}.csv").is_file()

    report = json.loads((root / "reports/tracking.json").read_text())
    assert set(report["runs"]) == {"baseline", "candidate"}
    import mlflow

    client = mlflow.MlflowClient()
    parent = client.get_run(report["parent_run_id"])
    assert parent.info.run_name == "pipeline"
    experiment = client.get_experiment_by_name("tests")
    children = {
        run.info.run_name: run
        for run in client.search_runs([experiment.experiment_id])
        if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert set(children) == {"baseline", "candidate"}
    for name, run in children.items():
        assert f"test_{primary}" in run.data.metrics
        assert report["runs"][name]["run_id"] == run.info.run_id
        model = mlflow.pyfunc.load_model(report["runs"][name]["model_uri"])
        assert model.metadata.signature is not None
    # The rounds early stopping kept are logged beside the settings, as the manifest has them.
    manifest = json.loads((root / "models/manifest.json").read_text())
    fitted = manifest["models"]["candidate"]["fitted"]
    logged = children["candidate"].data.params
    assert logged["candidate.fitted.n_estimators"] == str(fitted["n_estimators"])
    assert logged["candidate.n_estimators"] == "30"

    before_models = snapshot(root / "models")
    before_metrics = snapshot(root / "metrics")
    corrupt = project.frame.copy()
    corrupt["income"] = corrupt["income"].astype(object)
    corrupt.loc[3, "income"] = "not a number"
    project.write_data(corrupt)
    assert run_stage("ingest").exit_code == 0
    result = run_stage("validate")
    assert result.exit_code == 1
    assert "error:" in result.stderr
    assert "'income'" in result.stderr
    assert "Traceback" not in result.output
    assert snapshot(root / "models") == before_models
    assert snapshot(root / "metrics") == before_metrics
