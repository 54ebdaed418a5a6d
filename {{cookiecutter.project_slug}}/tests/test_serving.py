"""Serving: `export` pins the approved model, the service and `predict` check every record
against the data contract, a failing model falls back, and the service answers over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from {{ cookiecutter.package_name }}.cli import app
from {{ cookiecutter.package_name }}.core.artifacts import load_models
from {{ cookiecutter.package_name }}.core.config import DeclaredBound
from {{ cookiecutter.package_name }}.core.features import FeatureSpec, prepare_frame
from {{ cookiecutter.package_name }}.serving import scorer as serving
from {{ cookiecutter.package_name }}.serving.fastpath import compile_pipeline
from {{ cookiecutter.package_name }}.serving.predict import run_predict
from {{ cookiecutter.package_name }}.serving.scorer import (
    MAX_TEXT_LENGTH,
    STORE_DIR,
    ModelFailedError,
    PredictionLog,
    Scorer,
    max_body_bytes,
    outside_observed,
    project_identity,
    record_model,
    row_problems,
    training_values,
    use_project_store,
)

STAGES = (("ingest",), ("validate",), ("split",), ("train",), ("evaluate", "--no-track"))


@pytest.fixture(scope="module", autouse=True)
def bentoml_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One BentoML home for the module: BentoML reads $BENTOML_HOME once per process."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENTOML_HOME", str(tmp_path_factory.mktemp("bentoml")))
        patch.setenv("BENTOML_DO_NOT_TRACK", "true")
        yield


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def export_approved(project: Any, monkeypatch: pytest.MonkeyPatch, **sections: Any) -> str:
    """Run the pipeline (no tracking), write the gate report and export what it approved."""
    if sections:
        project.write_params(**sections)
    for stage in STAGES:
        result = cli(*stage)
        assert result.exit_code == 0, f"{stage}: {result.output}"
    gate = cli("gate", "--write")
    assert gate.exit_code == 0, gate.output
    assert json.loads(Path("reports/gate.json").read_text())["decision"] == "promote"
    return package_approved(project)


def package_approved(project: Any) -> str:
    """Export the model reports/gate.json approved, packaged directly: `export --proposed`
    also checks the pipeline against dvc.lock and rebuilds the verdict (test_registry.py),
    and this project is not a DVC repository."""
    from {{ cookiecutter.package_name }}.serving.export import run_export, stage_models

    report = json.loads(Path("reports/gate.json").read_text())
    params = project.params()
    role, sha256 = report["proposed_model"]["role"], report["proposed_model"]["sha256"]
    result = run_export(params, staged=lambda d: stage_models(params, d, role, sha256))
    return result["tag"]


def bundle_path(tag: str) -> Path:
    import bentoml

    return Path(bentoml.models.get(tag).path)


def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["target"])


@pytest.mark.parametrize("task", ["binary_classification", "regression"])
def test_export_pins_the_model_the_gate_approved(make_project, monkeypatch, task):
    project = make_project(task)
    tag = export_approved(project, monkeypatch)
    scorer = Scorer(bundle_path(tag))
    proposed = json.loads(Path("reports/gate.json").read_text())["proposed_model"]
    assert scorer.info.model_sha256 == proposed["sha256"]
    assert scorer.info.model_version == f"gate-{proposed['sha256'][:12]}"
    assert scorer.info.model_role == proposed["role"]
    # A candidate falls back to the baseline; a baseline has nothing simpler worth serving.
    assert (scorer.info.fallback_kind is not None) == (proposed["role"] == "candidate")
    scored = scorer.score(features(project.frame.head(20)), probabilities=task != "regression")
    assert len(scored.outputs) == 20 and not scored.fallback


def test_export_refuses_a_model_file_changed_after_the_gate(interaction_project):
    role = json.loads(Path("reports/gate.json").read_text())["proposed_model"]["role"]
    with Path(f"models/{role}.joblib").open("ab") as handle:
        handle.write(b"tampered")
    result = cli("export", "--proposed")
    assert result.exit_code == 1
    assert "not what dvc.lock records" in result.output and "dvc checkout" in result.output
    assert "Traceback" not in result.output


def test_export_proposed_needs_a_dvc_project(make_project):
    make_project("binary_classification")
    result = cli("export", "--proposed")
    assert result.exit_code == 1
    assert "not a DVC project" in result.output and "Traceback" not in result.output


def test_export_needs_exactly_one_source(make_project, monkeypatch):
    make_project("binary_classification")
    for arguments in ((), ("--proposed", "--version", "2")):
        result = cli("export", *arguments)
        assert result.exit_code == 1
        assert "exactly one of --alias NAME, --version N and --proposed" in result.output


@pytest.fixture(scope="module")
def approved_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One approved export for the module's in-process tests: the pipeline runs once."""
    from conftest import Project  # tests/ is on the path; make_project is per test

    root = tmp_path_factory.mktemp("approved")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        return bundle_path(export_approved(Project(root, "binary_classification"), patch))


@pytest.fixture
def scorer(approved_bundle: Path) -> Scorer:
    """A fresh Scorer of the module's approved bundle for each test (tests may change it)."""
    return Scorer(approved_bundle)


def test_the_request_model_follows_the_contract(scorer):
    record_type = record_model(scorer.contract)
    good = scorer.example_record()
    record_type.model_validate(good)
    observed = scorer.contract.columns["age"].observed
    # The range seen in training is no rule: far outside it is still a valid record.
    record_type.model_validate_json(json.dumps({**good, "age": observed.max * 10 + 1000}))
    cases = {
        "missing": ({k: v for k, v in good.items() if k != "income"}, "income", "missing"),
        "extra": ({**good, "incme": 3.0}, "incme", "extra_forbidden"),
        "type": ({**good, "income": "lots"}, "income", "float_type"),
        "number as text": ({**good, "income": "0.5"}, "income", "float_type"),
        "boolean": ({**good, "age": True}, "age", "float_type"),
        "long text": ({**good, "region": "x" * 1_000_000}, "region", "string_too_long"),
        "range": ({**good, "age": 1000.0}, "age", "less_than_equal"),
    }
    declared = scorer.contract.model_copy(deep=True)
    declared.columns["age"] = declared.columns["age"].declared(DeclaredBound(min=0, max=120))
    for name, (record, field, kind) in cases.items():
        checked = record_model(declared) if name == "range" else record_type
        with pytest.raises(ValidationError) as caught:
            checked.model_validate_json(json.dumps(record))  # as the service validates
        errors = caught.value.errors()
        assert (errors[0]["loc"], errors[0]["type"]) == ((field,), kind), name
    # Integers are numbers; the longest category the contract knows is never too long.
    record_type.model_validate_json(json.dumps({**good, "income": 3}))


def test_records_are_prepared_as_prepare_frame_prepares_a_frame(scorer):
    """The service's fast path builds the same model input as the batch path."""
    records = [scorer.example_record() for _ in range(3)]
    records[1] = {**records[1], "age": None, "plan": None, "region": "west"}
    records[2] = {**records[2], "income": 12.5}
    expected = prepare_frame(scorer.frame(records), scorer.info.spec)
    pd.testing.assert_frame_equal(scorer.prepare_records(records), expected)


def test_unseen_categories_warn_or_refuse_as_the_contract_says(scorer):
    frame = scorer.example()
    frame.loc[0, "region"] = "atlantis"
    problems, warned = row_problems(frame, scorer.contract, "warn")
    assert not problems and warned == {"region": {"atlantis": 1}}
    problems, _ = row_problems(frame, scorer.contract, "error")
    assert [(p.row, p.field) for p in problems] == [(0, "region")]
    assert "never saw" in problems[0].message
    # The service's check of validated records agrees with the frame check.
    scorer.info = scorer.info.model_copy(update={"unseen_categories": "error"})
    records = [scorer.example_record(), {**scorer.example_record(), "region": "atlantis"}]
    fast, _ = scorer.check_records(records)
    assert [(p.row, p.field, p.message) for p in fast] == [(1, "region", problems[0].message)]


def test_values_outside_the_observed_range_are_scored_and_counted(scorer):
    """Was: the first batch's range plus 50% refused real rows in `predict` and the service.
    Outside the observed range a value is scored and counted; a declared bound refuses it."""
    observed = scorer.contract.columns["age"].observed
    frame = scorer.example()
    frame = pd.concat([frame] * 3, ignore_index=True)
    frame.loc[1, "age"] = observed.max * 3 + 10
    frame.loc[2, "age"] = observed.min - 100
    problems, _ = row_problems(frame, scorer.contract, "warn")
    assert problems == []
    assert outside_observed(frame, scorer.contract) == {"age": 2}
    records = [scorer.example_record(), {**scorer.example_record(), "age": float(frame.age[1])}]
    assert scorer.outside_records(records) == {"age": 1}
    assert len(scorer.score(frame).outputs) == 3
    declared = scorer.contract.model_copy(deep=True)
    declared.columns["age"] = declared.columns["age"].declared(DeclaredBound(min=0, max=120))
    problems, _ = row_problems(frame, declared, "warn")
    assert [(p.row, p.field) for p in problems] == [(1, "age"), (2, "age")]
    assert "above the maximum 120.0" in problems[0].message


def test_frames_are_checked_by_the_contracts_pandera_schema(scorer, monkeypatch, add_schema_rule):
    """`predict` and drift check frames with the pandera schema `validate` uses (to_pandera):
    its failure cases become one problem per row (the first rule the row breaks, in contract
    column order), numbered from `first_row`, naming the field and the rule."""
    contract = scorer.contract.model_copy(deep=True)
    rules = contract.columns
    rules["age"] = rules["age"].declared(DeclaredBound(min=0, max=120))
    rules["income"] = rules["income"].model_copy(update={"nullable": False})
    rules["plan"] = rules["plan"].model_copy(update={"allowed": ["basic", "premium"]})
    frame = pd.concat([scorer.example()] * 8, ignore_index=True).astype(object)
    frame.loc[1, "age"] = "old"
    frame.loc[2, "age"] = float("inf")
    frame.loc[3, "age"] = -5
    frame.loc[4, "income"] = None
    frame.loc[5, "plan"] = "gold"
    frame.loc[6, "region"] = "atlantis"
    frame.loc[7, ["age", "income"]] = [500, None]  # two rules broken: the first is reported
    frame.index = frame.index + 40  # a chunk's own index plays no part
    expected = [
        (101, "age", "'old' is not a number"),
        (102, "age", "is not a finite number"),
        (103, "age", "-5.0 is below the minimum 0.0"),
        (104, "income", "is missing, and the contract does not allow missing values"),
        (105, "plan", "'gold' is not one of ['basic', 'premium']"),
        (107, "age", "500.0 is above the maximum 120.0"),
    ]
    problems, warned = row_problems(frame, contract, "warn", first_row=100)
    assert [(p.row, p.field, p.message) for p in problems] == expected
    assert warned == {"region": {"atlantis": 1}}, "counted under warn, not refused"
    problems, warned = row_problems(frame, contract, "error", first_row=100)
    assert (106, "region", f"'atlantis' {serving.UNSEEN_ERROR}") in [
        (p.row, p.field, p.message) for p in problems
    ]
    assert warned == {}
    # The schema is the engine: a rule added to it is enforced with no checking code changed
    # (a hand-written checker would let this row through).
    import pandera.pandas as pa

    add_schema_rule()
    frame = pd.concat([scorer.example()] * 3, ignore_index=True)
    frame.loc[1, "age"] = 33.25
    problems, _ = row_problems(frame, scorer.contract, "warn", first_row=10)
    assert [str(p) for p in problems] == [
        "record 11, field 'age': 33.25 breaks the rule age_not_33.25"
    ]
    # A rule of the whole frame that fails refuses every row (none is known to be good).
    monkeypatch.setattr(
        serving,
        "to_pandera",
        lambda *args, **kwargs: pa.DataFrameSchema(
            checks=[pa.Check(lambda rows: len(rows) > 5, element_wise=False, name="six_rows")]
        ),
    )
    problems, _ = row_problems(frame, scorer.contract, "warn")
    assert [(p.row, p.field, p.message) for p in problems] == [
        (row, "*", "the frame breaks the rule six_rows") for row in range(3)
    ]


def test_the_request_model_and_the_frame_schema_agree(scorer):
    """Both are built from the same contract rules (the service's record path is pydantic,
    frames go through pandera): a record one refuses, the other refuses too."""
    contract = scorer.contract.model_copy(deep=True)
    rules = contract.columns
    rules["age"] = rules["age"].declared(DeclaredBound(min=0, max=120))
    rules["income"] = rules["income"].model_copy(update={"nullable": False})
    rules["plan"] = rules["plan"].model_copy(update={"allowed": ["basic", "premium"]})
    record_type = record_model(contract)
    good = {**scorer.example_record(), "plan": "basic", "age": 40.0, "income": 10.0}
    changes = [
        {},
        {"age": -5.0},
        {"age": 500.0},
        {"age": 120.0},
        {"age": "old"},
        {"age": float("inf")},
        {"age": None},
        {"income": None},
        {"plan": "gold"},
        {"plan": None},
        {"region": "atlantis"},  # unseen: served under warn, by both
    ]
    for change in changes:
        record = {**good, **change}
        try:
            record_type.model_validate(record)
            accepted = True
        except ValidationError:
            accepted = False
        problems, _ = row_problems(pd.DataFrame([record]), contract, "warn")
        assert accepted == (not problems), (change, problems)


@pytest.mark.slow  # a fresh interpreter importing the package (seconds): CI runs it
def test_the_record_path_never_imports_pandera(approved_bundle):
    """The Bento installs no pandera (requirements/serving.txt): the service checks a record
    with its request model, built from the contract; pandera checks frames only."""
    directory = approved_bundle
    code = (
        "import sys\n"
        "from {{ cookiecutter.package_name }}.serving.scorer import Scorer, record_model\n"
        f"scorer = Scorer({str(directory)!r})\n"
        "record = record_model(scorer.contract).model_validate(scorer.example_record())\n"
        "rows = [record.model_dump(by_alias=True)]\n"
        "scorer.check_records(rows), scorer.outside_records(rows), scorer.score_records(rows)\n"
        "assert 'pandera' not in sys.modules, 'pandera was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_rule_added_to_the_pandera_schema_is_enforced_by_predict(
    make_project, monkeypatch, add_schema_rule
):
    project = make_project("binary_classification")
    tag = export_approved(project, monkeypatch)
    add_schema_rule()
    rows = features(project.frame).head(50).copy()
    rows.loc[[3, 30], "age"] = 33.25
    # Outside the range seen in training: scored and counted per column (row 30 is refused,
    # so its income is not counted).
    observed = Scorer(bundle_path(tag)).observed
    rows.loc[7, "age"] = observed["age"][1] + 50
    rows.loc[[8, 30], "income"] = observed["income"][1] * 10 + 1
    rows.to_csv(project.root / "rule.csv", index=False)
    result = cli("predict", "--input", "rule.csv", "--output", "out/rule.csv")
    assert result.exit_code == 0, result.output
    refused = pd.read_csv(project.root / "out/rule.rejected.csv")
    assert refused.values.tolist() == [
        [3, "age", "33.25 breaks the rule age_not_33.25"],
        [30, "age", "33.25 breaks the rule age_not_33.25"],
    ]
    assert len(pd.read_csv(project.root / "out/rule.csv")) == 48
    summary = run_predict(project.params(), Path("rule.csv"), Path("out/rule.csv"), None, None)
    assert summary["rejected"] == 2
    assert summary["outside_observed_range"] == {
        "age": {"values": 1, "observed": list(observed["age"])},
        "income": {"values": 1, "observed": list(observed["income"])},
    }
    assert "'age': 1 value outside the range seen in training" in result.output


class Broken:
    def predict(self, _features: Any) -> Any:
        raise RuntimeError("boom")

    predict_proba = predict


def export_from(monkeypatch: pytest.MonkeyPatch, *arguments: str) -> Scorer:
    result = cli("export", *arguments)
    assert result.exit_code == 0, result.output
    return Scorer(bundle_path(result.stdout.split()[1].rstrip(":")))


def test_export_pins_the_champion_of_the_registry(interaction_project, monkeypatch):
    """From the registry: the champion's version, its contract and its baseline as fallback."""
    for arguments in (("promote",), ("promote", "--to", "champion")):
        result = cli(*arguments)
        assert result.exit_code == 0, result.output
    scorer = export_from(monkeypatch, "--alias", "champion")
    proposed = json.loads(Path("reports/gate.json").read_text())["proposed_model"]
    assert scorer.info.model_version == "1" and scorer.info.model_sha256 == proposed["sha256"]
    assert scorer.info.fallback_kind == "linear"
    assert (
        scorer.info.contract_sha256
        == json.loads(Path("models/manifest.json").read_text())["contract_sha256"]
    )
    assert len(scorer.score(scorer.example(), probabilities=True).outputs) == 1
    missing = cli("export", "--version", "7")
    assert missing.exit_code == 1 and "Traceback" not in missing.output


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as the service's request model hands them over: missing values as None."""
    return features(frame).astype(object).where(features(frame).notna(), None).to_dict("records")


def assert_replica_scores_as_the_pipeline(scorer: Scorer, records: list[dict[str, Any]]) -> None:
    assert scorer.fast is not None
    proba = scorer.info.is_classification
    fast = scorer.score_records(records, probabilities=proba)
    slow = scorer.score_features(scorer.prepare_records(records), probabilities=proba)
    assert not fast.fallback and len(fast.outputs) == len(records)
    for replica, pipeline in zip(fast.outputs, slow.outputs, strict=True):
        if proba:  # labels are equal; probabilities equal up to rounding
            assert replica["prediction"] == pipeline["prediction"]
            assert replica["probabilities"] == pytest.approx(pipeline["probabilities"], rel=1e-9)
        else:
            assert replica["prediction"] == pytest.approx(pipeline["prediction"], rel=1e-9)


@pytest.mark.parametrize("task", ["binary_classification", "multiclass", "regression"])
def test_the_replica_scores_every_record_as_the_pipeline_does(make_project, monkeypatch, task):
    """The service's numpy replica of the pipeline (fastpath.py) gives the pipeline's answers:
    on real rows, missing values in every column, unseen categories and extreme numbers."""
    project = make_project(task)
    scorer = Scorer(bundle_path(export_approved(project, monkeypatch)))
    records = records_of(project.frame.head(200))
    for name in scorer.columns:
        records.append({**records[0], name: None})
    records += [{**record, "region": "atlantis", "plan": "gold"} for record in records[:5]]
    records.append({**records[1], "age": 1e6, "income": -1e6})
    assert_replica_scores_as_the_pipeline(scorer, records)


def test_the_replica_of_lightgbm_scores_as_its_pipeline(interaction_project, monkeypatch):
    scorer = export_from(monkeypatch, "--proposed")
    assert scorer.info.model_kind == "lightgbm"
    assert_replica_scores_as_the_pipeline(scorer, records_of(interaction_project.frame.head(300)))


def test_a_model_the_replica_cannot_follow_is_scored_by_its_pipeline(project):
    """A transformer that is not affine, or a model that is not a pipeline: no replica."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    spec = FeatureSpec(numeric=("age", "income"), categorical=())
    frame = prepare_frame(project.frame.fillna({"age": 40.0}), spec)
    curved = make_pipeline(
        ColumnTransformer([("log", FunctionTransformer(np.log1p), ["age", "income"])]),
        LogisticRegression(),
    ).fit(frame, project.frame["target"])
    example = [{"age": 40.0, "income": 100.0}]
    assert compile_pipeline(curved, spec, {}, {"age": 100.0, "income": 1e5}, example) is None
    assert compile_pipeline(curved[-1], spec, {}, {}, example) is None


def test_a_failing_replica_leaves_the_answer_to_the_pipeline(scorer):
    record = scorer.example_record()
    expected = scorer.score_records([record]).outputs
    scorer.fast.estimator = Broken()
    scored = scorer.score_records([record])
    assert scored.outputs == expected and not scored.fallback


def test_a_failing_model_falls_back_and_two_failures_raise(interaction_project, monkeypatch):
    scorer = export_from(monkeypatch, "--proposed")
    assert scorer.info.model_role == "candidate" and scorer.fallback is not None
    frame = scorer.example()
    assert scorer.fast is not None
    scorer.model = Broken()
    assert scorer.fast is None  # the old model's replica goes with it; Broken has none
    scored = scorer.score(frame, probabilities=True)
    assert scored.fallback and len(scored.outputs) == 1
    assert scorer.score_records([scorer.example_record()], probabilities=True).fallback
    scorer.fallback = Broken()
    with pytest.raises(ModelFailedError, match="both failed"):
        scorer.score(frame)


def test_the_prediction_log_has_one_line_per_record(scorer, tmp_path):
    frame = pd.concat([scorer.example()] * 3, ignore_index=True)
    log = PredictionLog(str(tmp_path / "log" / "predictions.jsonl"))
    records = [scorer.example_record()] * 3
    log.write("req-1", scorer.info, records, scorer.score(frame, probabilities=True))
    lines = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert len(lines) == 3
    assert set(lines[0]) == {
        "ts",
        "request_id",
        "model_version",
        "model_kind",
        "latency_ms",
        "fallback",
        "inputs",
        "output",
    }
    assert set(lines[0]["inputs"]) == set(scorer.columns)
    assert set(lines[0]["output"]["probabilities"]) == {"0", "1"}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_batch_predict_scores_in_chunks_and_sets_bad_rows_aside(make_project, monkeypatch, suffix):
    project = make_project("binary_classification")
    # A declared bound is hard; the observed range is not (income 1e12 is scored).
    bounds = {"bounds": {"income": {"min": 0}}}
    export_approved(project, monkeypatch, serve={"batch_rows": 100}, validate=bounds)
    rows = features(project.frame).astype({"age": "string"})  # a text column, as files have
    rows.loc[5, "age"] = "forty"
    rows.loc[250, "income"] = -1e12
    rows.loc[100, "income"] = 1e12
    source = project.root / f"score{suffix}"
    rows.to_csv(source, index=False) if suffix == ".csv" else rows.to_parquet(source)
    output = project.root / f"out/scored{suffix}"
    result = cli("predict", "--input", str(source), "--output", str(output))
    assert result.exit_code == 0, result.output
    assert "2 rows refused" in result.output
    # Counted, never refused (as the service's model_out_of_range_values_total): the scored
    # 1e12, not the refused -1e12.
    assert "'income': 1 value outside the range seen in training [" in result.output
    scored = pd.read_csv(output) if suffix == ".csv" else pd.read_parquet(output)
    assert len(scored) == len(rows) - 2
    assert {"prediction", "probability_0", "probability_1"} <= set(scored.columns)
    refused = pd.read_csv(project.root / "out/scored.rejected.csv")
    assert refused[["row", "field"]].values.tolist() == [[5, "age"], [250, "income"]]
    assert not list(output.parent.glob("*.partial*"))


def test_a_code_with_leading_zeros_means_the_same_to_every_reader(make_project, monkeypatch):
    """A categorical code column ("007") is read by one reader (core/source.py) everywhere:
    predict and drift used pandas and got 7, an unseen category on every row."""
    project = make_project("binary_classification")
    frame = project.frame.copy()
    codes = np.random.default_rng(3).choice(["007", "012", "031", "099"], len(frame))
    frame["region"] = codes
    frame.loc[frame["region"] == "007", "target"] = 1  # the code matters to the model
    project.frame = frame
    project.write_data(frame)
    tag = export_approved(project, monkeypatch, data={"categorical": ["region"]})
    scorer = Scorer(bundle_path(tag))
    rows = features(frame.head(300))
    in_process = scorer.score(rows, probabilities=True)
    assert not in_process.unseen
    # The service's path: records as JSON carries them, checked then scored.
    records = json.loads(rows.to_json(orient="records"))
    problems, unseen = scorer.check_records(records)
    assert not problems and not unseen
    served = scorer.score_records(records, probabilities=True)
    expected = [output["prediction"] for output in in_process.outputs]
    assert [output["prediction"] for output in served.outputs] == expected
    # predict, from a CSV file as a user has it.
    source = project.root / "codes.csv"
    rows.to_csv(source, index=False)
    output = project.root / "scored.csv"
    result = cli("predict", "--input", str(source), "--output", str(output))
    assert result.exit_code == 0, result.output
    assert "unseen" not in result.output.lower()
    scored = pd.read_csv(output)
    assert scored["prediction"].tolist() == expected
    np.testing.assert_allclose(
        scored["probability_1"],
        [output["probabilities"]["1"] for output in in_process.outputs],
        rtol=1e-9,
    )
    # drift, on a sample of the training data: the same codes, so no drift.
    sample = project.root / "sample.csv"
    features(frame.sample(frac=0.8, random_state=1)).to_csv(sample, index=False)
    drift = cli("drift", "--current", str(sample))
    assert drift.exit_code == 0, drift.output
    report = json.loads(Path("reports/drift.json").read_text())
    assert "region" not in report["drifted_features"]


def refused_fields(record_type: Any, record: dict[str, Any]) -> list[str] | None:
    """The fields the request model refuses as not features (None: it accepts the record)."""
    try:
        record_type.model_validate_json(json.dumps(record))  # as the service validates
    except ValidationError as error:
        assert {issue["type"] for issue in error.errors()} == {"extra_forbidden"}, error
        assert all("serve.extra_columns" in issue["msg"] for issue in error.errors())
        return sorted(issue["loc"][0] for issue in error.errors())
    return None


@pytest.mark.parametrize(
    ("policy", "as_in_file", "with_unknown"),
    [
        ("known", None, ["note"]),
        ("ignore", None, None),
        ("error", ["customer", "target"], ["customer", "note", "target"]),
    ],
)
def test_the_service_and_predict_treat_other_columns_alike(
    make_project, monkeypatch, policy, as_in_file, with_unknown
):
    """serve.extra_columns, carried by the export: a row as it appears in the data file (the
    target and a data.drop column beside the features), and one with a column the data never
    had, are accepted or refused, naming the same columns, by the service's request model and
    by `predict`."""
    project = make_project("binary_classification")
    frame = project.frame.assign(customer=[f"c{i:04d}" for i in range(len(project.frame))])
    project.write_data(frame)
    project.write_params(data={"drop": ["customer"]})
    scorer = Scorer(
        bundle_path(export_approved(project, monkeypatch, serve={"extra_columns": policy}))
    )
    assert scorer.info.extra_columns == policy
    record_type = record_model(scorer.contract, scorer.info.extra_columns)
    rows = frame.head(50)
    for extra, expected in (({}, as_in_file), ({"note": "call back"}, with_unknown)):
        batch = rows.assign(**extra)
        records = batch.astype(object).where(batch.notna(), None).to_dict("records")
        refused = {tuple(refused_fields(record_type, record) or ()) for record in records}
        assert refused == {tuple(expected or ())}, (extra, refused)
        source = project.root / "batch.csv"
        batch.to_csv(source, index=False)
        output = project.root / "scored.csv"
        output.unlink(missing_ok=True)
        result = cli("predict", "--input", str(source), "--output", str(output))
        if expected is None:
            assert result.exit_code == 0, result.output
            scored = pd.read_csv(output)
            assert len(scored) == len(batch) and set(batch.columns) < set(scored.columns)
            # The service scores what predict scores: the features, nothing else.
            served = [
                record_type.model_validate(record).model_dump(by_alias=True) for record in records
            ]
            assert all(set(record) == set(scorer.columns) for record in served)
            outputs = scorer.score_records(served).outputs
            assert [output["prediction"] for output in outputs] == scored["prediction"].tolist()
            limit = max_body_bytes(scorer.contract, len(records), scorer.info.extra_columns)
            assert len(json.dumps({"records": records}, indent=2)) < limit
        else:
            assert result.exit_code == 1 and not output.exists(), result.output
            assert "serve.extra_columns" in result.output and "Traceback" not in result.output
            for column in ["age", "income", "plan", "region", *(expected or [])]:
                assert (f"'{column}'" in result.output) == (column in expected), column


def test_predict_reports_the_categories_the_model_never_saw(make_project, monkeypatch):
    """As the service counts them: per column, the scored rows, the distinct values and the most
    frequent few. An open-ended column (more than validate.max_categories values: the contract
    lists none) is checked against the values the model's encoders learnt in training, and
    counted, never refused, even under validate.unseen_categories: error."""
    project = make_project("binary_classification")
    # region has 4 values: open-ended with max_categories 3; plan (3 values) keeps its list.
    scorer = Scorer(
        bundle_path(export_approved(project, monkeypatch, validate={"max_categories": 3}))
    )
    rules = scorer.contract.features
    assert rules["region"].categories is None and rules["plan"].categories is not None
    trained = frozenset(pd.read_parquet("data/processed/train.parquet")["region"].dropna())
    assert scorer.open_ended == ["region"] and scorer.trained == {"region": trained}
    models, _ = load_models(Path("models"), ("baseline", "candidate"))
    for model in models.values():  # one-hot (linear) and ordinal (LightGBM) encoders alike
        assert training_values(model, ["region", "plan"])["region"] == trained

    rows = features(project.frame)
    rows.loc[[1, 2, 3], "plan"] = "gold"
    rows.loc[4, "plan"] = "platinum"
    rows.loc[[5, 6], "region"] = "atlantis"
    source, output = project.root / "batch.csv", project.root / "scored.csv"
    rows.to_csv(source, index=False)
    result = cli("predict", "--input", str(source), "--output", str(output))
    assert result.exit_code == 0, result.output
    assert (
        "'plan': 4 rows with 2 values the model never saw ('gold', 'platinum'); "
        "their predictions may be unreliable"
    ) in result.output
    assert (
        "'region' (open-ended, 5 distinct values in the file): 2 rows with 1 value the model "
        "never saw ('atlantis')"
    ) in result.output
    summary = run_predict(project.params(), source, output, None, None)
    assert summary["unseen_categories"] == {
        "plan": {
            "kind": "listed",
            "checked": True,
            "rows": 4,
            "distinct": 2,
            "examples": ["gold", "platinum"],
            "truncated": False,
        },
        "region": {
            "kind": "open-ended",
            "file_distinct": 5,
            "checked": True,
            "rows": 2,
            "distinct": 1,
            "examples": ["atlantis"],
            "truncated": False,
        },
    }

    # The service's check (what model_unseen_categories_total counts) sees the same values.
    scorer.info = scorer.info.model_copy(update={"unseen_categories": "error"})
    records = records_of(project.frame.head(3))
    records[1] = {**records[1], "region": "atlantis"}
    assert scorer.check_records(records) == ([], {"region": {"atlantis": 1}})

    # A model whose encoders cannot be read: the open-ended column is reported as not checked.
    monkeypatch.setattr(serving, "training_values", lambda model, columns: {})
    result = cli("predict", "--input", str(source), "--output", str(output))
    assert result.exit_code == 0, result.output
    assert (
        "'region' (open-ended, 5 distinct values in the file): not checked for new values"
    ) in result.output
    assert "'plan': 4 rows" in result.output


def test_batch_predict_refuses_bad_arguments_without_a_traceback(make_project, monkeypatch):
    project = make_project("binary_classification")
    export_approved(project, monkeypatch)
    empty = project.root / "empty.csv"
    empty.write_text("age,income,plan,region\n")
    cases = {
        ("--input", "missing.csv", "--output", "o.csv"): "does not exist",
        ("--input", str(empty), "--output", "o.txt"): ".csv or .parquet",
        ("--input", str(empty), "--output", "o.csv"): "no rows",
    }
    for arguments, message in cases.items():
        result = cli("predict", *arguments)
        assert result.exit_code == 1 and message in result.output, result.output
        assert "Traceback" not in result.output


# ----------------------------------------------------------------------------------------------
# The service over HTTP: `bentoml serve`, as a user starts it.
# ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, body: Any = None, key: str | None = None) -> tuple[int, dict, Any]:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, dict(error.headers), error.read()
    headers = {name.lower(): value for name, value in headers.items()}
    try:
        return status, headers, json.loads(raw or b"null")
    except json.JSONDecodeError:
        return status, headers, raw.decode()


@contextlib.contextmanager
def running_service(directory: Path, **environment: str) -> Iterator[str]:
    """`bentoml serve` in a subprocess on a free loopback port, ready; always stopped after."""
    port, server_log = free_port(), directory / "server.log"
    bentoml = Path(sys.executable).parent / "bentoml"
    target = "{{ cookiecutter.package_name }}.serving.service:Predictor"
    process = subprocess.Popen(
        [str(bentoml), "serve", target, "--port", str(port)],
        env={**os.environ, **environment},
        # A file, not a pipe: nobody reads a pipe while the tests run, and a server blocked on
        # a full pipe (BentoML logs every 400 with a traceback) stops answering.
        stdout=server_log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"bentoml serve exited:\n{server_log.read_text()[-3000:]}")
            try:
                if call(f"{url}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the service was not ready within 90 s")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def service(make_project, monkeypatch, tmp_path) -> Iterator[tuple[str, str, Path, Scorer]]:
    project = make_project("binary_classification")
    tag = export_approved(project, monkeypatch, validate={"unseen_categories": "error"})
    key, log = "test-key-123", tmp_path / "predictions.jsonl"
    with running_service(tmp_path, SERVICE_API_KEY=key, PREDICTION_LOG=str(log)) as url:
        yield url, key, log, Scorer(bundle_path(tag))


def test_a_model_that_fails_in_the_server_is_answered_by_its_fallback(
    interaction_project, monkeypatch, tmp_path
):
    """Over HTTP: the served model raises on every request (a model trained on other columns),
    the baseline answers, the response and the metrics say so."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    from {{ cookiecutter.package_name }}.core.artifacts import file_sha256

    result = cli("export", "--proposed")
    assert result.exit_code == 0, result.output
    tag = result.stdout.split()[1].rstrip(":")
    bundle = bundle_path(tag)
    wrong = LogisticRegression().fit(np.eye(3), [0, 1, 0])  # expects 3 unnamed columns
    joblib.dump(wrong, bundle / "model.joblib")
    info = json.loads((bundle / "bundle.json").read_text())
    assert info["fallback_kind"] == "linear"
    info["model_file_sha256"] = file_sha256(bundle / "model.joblib")
    (bundle / "bundle.json").write_text(json.dumps(info))
    record = Scorer(bundle).example_record()
    with running_service(tmp_path, BENTO_MODEL_TAG=tag) as url:
        status, headers, answer = call(f"{url}/v1/predict_proba", {"records": [record]})
        assert status == 200, answer
        assert headers["x-fallback"] == "true" and answer["fallback"] is True
        assert set(answer["predictions"][0]["probabilities"]) == {"0", "1"}
        metrics = call(f"{url}/metrics")[2]
    fallbacks = [line for line in metrics.splitlines() if line.startswith("model_fallback_total")]
    assert fallbacks and float(fallbacks[0].split()[-1]) >= 1, fallbacks


@pytest.mark.slow  # starts the service (seconds each): CI runs it
def test_the_service_answers_with_its_contract(service):
    url, key, log, scorer = service
    record = scorer.example_record()
    body = {"records": [record, record]}

    # The key guards everything but the probes and the metrics; 401 says nothing more.
    assert call(f"{url}/v1/predict", body)[0] == 401
    assert call(f"{url}/v1/predict", body, "wrong-key")[0:3:2] == (401, {"error": "unauthorized"})
    assert call(f"{url}/livez")[0] == 200

    status, headers, info = call(f"{url}/v1/info", key=key)
    assert status == 200 and info["model_version"] == scorer.info.model_version
    assert info["contract_sha256"] == scorer.info.contract_sha256

    status, headers, answer = call(f"{url}/v1/predict", body, key)
    assert status == 200, answer
    assert headers["x-model-version"] == scorer.info.model_version
    assert headers["x-fallback"] == "false"
    assert len(answer["predictions"]) == 2
    status, _, answer = call(f"{url}/v1/predict_proba", body, key)
    assert status == 200 and set(answer["predictions"][0]["probabilities"]) == {"0", "1"}

    bad = {
        "missing field": {"records": [{k: v for k, v in record.items() if k != "age"}]},
        "wrong type": {"records": [{**record, "income": "lots"}]},
        "empty list": {"records": []},
        "too many": {"records": [record] * (scorer.info.max_records + 1)},
        "unknown category": {"records": [{**record, "region": "atlantis"}]},
        "malformed JSON": b'{"records": [',
    }
    for name, payload in bad.items():
        status, _, answer = call(f"{url}/v1/predict", payload, key)
        assert 400 <= status < 500, (name, status, answer)
        if name in ("missing field", "wrong type", "unknown category"):
            field = {"missing field": "age", "wrong type": "income"}
            assert field.get(name, "region") in json.dumps(answer), (name, answer)

    # Outside the range seen in training: served, warned and counted by column.
    status, _, answer = call(f"{url}/v1/predict", {"records": [{**record, "income": 1e15}]}, key)
    assert status == 200, answer
    assert len(answer["warnings"]) == 1, answer
    assert answer["warnings"][0].startswith("field 'income': 1 value outside the range seen in")

    metrics = call(f"{url}/metrics")[2]
    for name in (
        "bentoml_service_request_total",
        "model_predictions_total",
        "model_rejected_records_total",
        'model_out_of_range_values_total{column="income"}',
    ):
        assert name in metrics, name
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(logged) == 5 and logged[0]["model_version"] == scorer.info.model_version


# ----------------------------------------------------------------------------------------------
# The service's ASGI application in a fresh interpreter (BentoML's app, middleware and metrics,
# as `bentoml serve` builds them), driven by Starlette's test client: no server, no port.
# ----------------------------------------------------------------------------------------------
DRIVER = """
import base64, json, sys
from starlette.testclient import TestClient
from {{ cookiecutter.package_name }}.serving.service import Predictor

answers = []
with TestClient(Predictor.to_asgi(), raise_server_exceptions=False) as client:
    for request in json.loads(open(sys.argv[1]).read()):
        content = base64.b64decode(request["body"]) if request["body"] else None
        if request["chunked"]:  # no Content-Length: the size is known only once it is read
            content = iter([content[:1000], content[1000:]])
        response = client.request(
            request["method"], request["path"], headers=request["headers"], content=content
        )
        answers.append([response.status_code, dict(response.headers), response.text])
open(sys.argv[2], "w").write(json.dumps(answers))
"""


def request(
    path: str,
    body: Any = None,
    key: str | None = None,
    headers: dict | None = None,
    chunked: bool = False,
) -> dict:
    """One request for `in_process`: a JSON body (bytes as they are), POST when it has one."""
    import base64

    raw = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"content-type": "application/json"} if raw is not None else {}
    sent |= {"authorization": f"Bearer {key}"} if key else {}
    return {
        "method": "GET" if raw is None else "POST",
        "path": path,
        "headers": sent | (headers or {}),
        "body": base64.b64encode(raw).decode() if raw is not None else None,
        "chunked": chunked,
    }


def in_process(directory: Path, requests: list[dict], **environment: str) -> Any:
    """Send `requests` in order to the service of the last export; returns their
    (status, lowercase headers, body as JSON or text) and the interpreter's stderr."""
    script, answers = directory / "requests.json", directory / "answers.json"
    script.write_text(json.dumps(requests))
    metrics = directory / "prometheus"
    metrics.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(script), str(answers)],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics), **environment},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        return None, done.stderr
    results = []
    for status, headers, text in json.loads(answers.read_text()):
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            body = text
        results.append((status, {k.lower(): v for k, v in headers.items()}, body))
    return results, done.stderr


def matches(value: Any, schema: dict, spec: dict) -> bool:
    """`value` fits the OpenAPI schema (the parts the service's documents use)."""
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:
        return any(matches(value, option, spec) for option in schema["anyOf"])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return (
            isinstance(value, dict)
            and all(name in value for name in schema.get("required", []))
            and all(matches(value[k], properties[k], spec) for k in value if k in properties)
        )
    if kind == "array":
        items = schema.get("items", {})
        return isinstance(value, list) and all(matches(item, items, spec) for item in value)
    types = {"string": str, "integer": int, "number": int | float, "boolean": bool}
    return kind not in types or isinstance(value, types[kind])


@pytest.mark.slow  # starts the service (seconds each): CI runs it
def test_the_service_answers_any_body_with_a_4xx_its_document_describes(
    make_project, monkeypatch, tmp_path
):
    """Bodies it cannot parse are a 400 or a 415 (never a 500), an oversized one a 413, a
    number sent as text or a boolean a 400 naming the field, a huge value is refused without
    being echoed or logged, a 401 says nothing about the model, and every error body has the
    schema the OpenAPI document gives for its status."""
    project = make_project("binary_classification")
    tag = export_approved(project, monkeypatch, validate={"unseen_categories": "error"})
    scorer = Scorer(bundle_path(tag))
    record, key = scorer.example_record(), "test-key-123"
    limit = max_body_bytes(scorer.contract, scorer.info.max_records)
    huge = "a" * 1_000_000
    multipart = "multipart/form-data; boundary=xyz"
    form_data = b"--xyz\r\ncontent-disposition: form-data\r\n\r\n1\r\n--xyz--"
    bad = {
        "multipart without a boundary": (b"--xyz\r\n", "multipart/form-data", 415),
        "multipart": (form_data, multipart, 415),
        "form": (b"records=1", "application/x-www-form-urlencoded", 415),
        "text": (json.dumps({"records": [record]}).encode(), "text/plain", 415),
        "pickle": (b"\x80\x04N.", "application/vnd.bentoml+pickle", 415),
        "malformed JSON": (b'{"records": [', "application/json", 400),
        "not UTF-8": (b"\xff\xfe{", "application/json", 400),
        "number as text": ({"records": [{**record, "income": "0.5"}]}, "application/json", 400),
        "boolean": ({"records": [{**record, "age": True}]}, "application/json", 400),
        "huge value": ({"records": [{**record, "region": huge}]}, "application/json", 400),
        "too large": (b" " * (limit + 1), "application/json", 413),
        "too large, chunked": (b" " * (limit + 1), "application/json", 413),
        "unknown category": ({"records": [{**record, "region": "atlantis"}]}, None, 422),
    }
    requests = [request("/docs.json", key=key), request("/v1/predict", {"records": [record]})]
    for name, (body, media_type, _) in bad.items():
        headers = {"content-type": media_type or ""}
        requests.append(request("/v1/predict", body, key, headers, chunked="chunked" in name))
    answers, log = in_process(tmp_path, requests, SERVICE_API_KEY=key)
    assert answers is not None, log
    (_, _, spec), (status, headers, unauthorized) = answers[:2]
    assert status == 401 and unauthorized == {"error": "unauthorized"}
    assert not {"x-model-version", "x-model-kind", "x-contract-sha256"} & set(headers)
    responses = spec["paths"]["/v1/predict"]["post"]["responses"]
    for (name, (_, _, expected)), (status, headers, body) in zip(
        bad.items(), answers[2:], strict=True
    ):
        assert status == expected, (name, status, body)
        assert headers["x-model-version"] == scorer.info.model_version, name
        schema = responses[str(status)]["content"]["application/json"]["schema"]
        assert matches(body, schema, spec), (name, body, schema)
    assert matches(unauthorized, responses["401"]["content"]["application/json"]["schema"], spec)
    by_name = dict(zip(bad, answers[2:], strict=True))
    for name, field in (("number as text", "income"), ("boolean", "age"), ("huge value", "region")):
        assert by_name[name][2]["detail"][0]["loc"] == ["records", 0, field], by_name[name]
    assert str(MAX_TEXT_LENGTH) in by_name["huge value"][2]["detail"][0]["msg"]
    assert len(json.dumps(by_name["huge value"][2])) < 1000
    assert huge[:1000] not in log  # BentoML logs every 400; the value is cut short there
    assert "serve.max_records" in by_name["too large"][2]["error"]


@pytest.mark.slow  # starts the service (seconds each): CI runs it
def test_the_service_takes_rows_of_the_data_file_and_counts_new_values(
    make_project, monkeypatch, tmp_path
):
    """Under the default serve.extra_columns (known), a record as the data file has it (with
    the target) is served and a column the data never had is a 400 naming it; a value an
    open-ended column never had in training is served, warned and counted in
    model_unseen_categories_total."""
    project = make_project("binary_classification")
    export_approved(project, monkeypatch, validate={"max_categories": 3})  # region: open-ended
    row = project.frame.head(1).astype(object)
    record = row.where(row.notna(), None).to_dict("records")[0]
    requests = [
        request("/v1/predict", {"records": [record]}),
        request("/v1/predict", {"records": [{**record, "note": "call back"}]}),
        request("/v1/predict", {"records": [{**record, "region": "atlantis"}]}),
        request("/metrics"),
    ]
    answers, log = in_process(tmp_path, requests)
    assert answers is not None, log
    (as_in_file, unknown, new, metrics) = answers
    assert as_in_file[0] == 200 and not as_in_file[2]["warnings"], as_in_file
    assert unknown[0] == 400, unknown
    assert [issue["loc"] for issue in unknown[2]["detail"]] == [["records", 0, "note"]]
    assert "serve.extra_columns" in unknown[2]["detail"][0]["msg"]
    assert new[0] == 200 and "'atlantis'" in new[2]["warnings"][0], new
    assert 'model_unseen_categories_total{column="region"} 1.0' in metrics[2]


@pytest.mark.slow  # starts the service (seconds each): CI runs it
def test_metrics_do_not_grow_with_the_paths_requested(make_project, monkeypatch, tmp_path):
    """Requests to random paths, with or without the key, share one `endpoint` label."""
    project = make_project("binary_classification")
    export_approved(project, monkeypatch)
    key = "test-key-123"
    probes = [
        request(f"/probe-{index}/{index * 7919}", key=key if index % 2 else None)
        for index in range(10)
    ]
    more = [request(f"/scan-{index}.php", key=key if index % 2 else None) for index in range(200)]
    metrics = request("/metrics")
    answers, log = in_process(tmp_path, [*probes, metrics, *more, metrics], SERVICE_API_KEY=key)
    assert answers is not None, log
    before, after = answers[len(probes)][2], answers[-1][2]
    assert {status for status, _, _ in answers[: len(probes)]} == {401, 404}
    assert 'endpoint="other"' in after
    assert "probe-" not in after and "scan-" not in after

    def series(text: str) -> set[str]:
        return {line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")}

    # The counts' digits grow; no series is added.
    assert series(after) == series(before), series(after) ^ series(before)
    assert len(after) - len(before) < 500, len(after) - len(before)


@pytest.mark.slow  # the service's app in a fresh interpreter (seconds): CI runs it
def test_regression_predictions_are_counted_in_training_target_quintile_bins(
    make_project, monkeypatch, tmp_path
):
    """The canary analysis compares the mix of these bins (docs/deploy.md): the bundle carries
    the training target's quintiles, every prediction is counted in the bin it falls in, and the
    value histogram's buckets sit at the same quintiles."""
    project = make_project("regression")
    scorer = Scorer(bundle_path(export_approved(project, monkeypatch)))
    quantiles = scorer.info.target_quantiles
    target = project.params().paths.train
    expected = np.percentile(pd.read_parquet(target)["target"], [20, 40, 60, 80])
    assert list(quantiles) == ["20", "40", "60", "80"]
    assert list(quantiles.values()) == pytest.approx(list(expected))
    assert scorer.info.prediction_bin(quantiles["20"]) == "p0-20"  # up to and including
    assert scorer.info.prediction_bin(quantiles["20"] + 1e-9) == "p20-40"
    assert scorer.info.prediction_bin(quantiles["80"] + 1.0) == "p80-100"

    records = records_of(project.frame.head(40))
    answers, log = in_process(
        tmp_path, [request("/v1/predict", {"records": records}), request("/metrics")]
    )
    assert answers is not None, log
    (status, _, body), (_, _, metrics) = answers
    assert status == 200, body
    bins = [scorer.info.prediction_bin(row["prediction"]) for row in body["predictions"]]
    for name in set(bins):
        line = next(
            line
            for line in metrics.splitlines()
            if line.startswith("model_predictions_total{") and f'predicted="{name}"' in line
        )
        assert float(line.rsplit(" ", 1)[1]) == bins.count(name), line
    assert 'predicted="value"' not in metrics
    buckets = {
        float(line.split('le="', 1)[1].split('"', 1)[0])
        for line in metrics.splitlines()
        if line.startswith("model_prediction_value_bucket{")
    }
    assert buckets == {*quantiles.values(), float("inf")}, buckets


@pytest.mark.slow  # two projects, each exported (seconds): CI runs it
def test_a_model_another_checkout_exported_is_refused(make_project, monkeypatch, tmp_path_factory):
    """Two checkouts sharing BentoML's store (here through $BENTOML_HOME): neither `predict`
    nor the service uses the other's model; the message names the export to run."""
    project = make_project("binary_classification")
    export_approved(project, monkeypatch)
    other = project.copy_to(tmp_path_factory.mktemp("other-checkout"))
    monkeypatch.chdir(other.root)
    rows = other.root / "rows.csv"
    features(other.frame.head(5)).to_csv(rows, index=False)
    arguments = ("predict", "--input", str(rows), "--output", str(other.root / "out.csv"))
    result = cli(*arguments)
    assert result.exit_code == 1, result.output
    assert "not by this checkout" in result.output and "export --proposed" in result.output
    assert "Traceback" not in result.output
    answers, log = in_process(other.root, [request("/readyz")])
    assert answers is None and "not by this checkout" in log and "export --proposed" in log
    # Exported here, it serves.
    package_approved(other)
    assert cli(*arguments).exit_code == 0


def test_each_checkout_has_its_own_bentoml_store(project, monkeypatch):
    """Without $BENTOML_HOME, export, predict and the service use <checkout>/.bentoml."""
    monkeypatch.delenv("BENTOML_HOME")
    use_project_store()
    assert os.environ["BENTOML_HOME"] == str(project.root.resolve() / STORE_DIR)
    monkeypatch.setenv("BENTOML_HOME", "/elsewhere")
    use_project_store()  # an explicit store wins
    assert os.environ["BENTOML_HOME"] == "/elsewhere"
    assert project_identity(project.root) != project_identity(project.root / "copy")
    gitignore = Path(__file__).resolve().parents[1] / ".gitignore"
    assert f"/{STORE_DIR}/" in gitignore.read_text().splitlines()


def test_the_bento_requirements_are_the_locked_serving_set():
    """requirements/serving.txt is what the command in its header makes of uv.lock today, and
    holds none of the pipeline's or the developer's tools."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    root = Path(__file__).resolve().parents[1]
    text = (root / "requirements/serving.txt").read_text(encoding="utf-8").splitlines()
    command = text[1].lstrip("# ").split()
    assert command[:2] == ["uv", "export"] and command[-2] == "--output-file", text[:2]
    fresh = subprocess.run(
        [uv, *command[1:-2]], cwd=root, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert fresh[2:] == text[2:], f"stale: regenerate it with `{text[1].lstrip('# ')}`"
    packages = {line.split("==")[0] for line in text if line and line[0].isalnum()}
    assert {"bentoml", "scikit-learn", "lightgbm", "pandas"} <= packages
    assert not packages & {"dvc", "mlflow", "pandera", "matplotlib", "pytest", "pre-commit", "ruff"}


def fuzzed_bodies(record: dict[str, Any]) -> Any:
    """Request bodies near the valid one: each field's value replaced by any JSON value, fields
    dropped or added, the list emptied or repeated, or an arbitrary JSON document."""
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=5)
    mutated = st.fixed_dictionaries({}, optional={name: values for name in record}).map(
        lambda changes: {**record, **changes}
    )
    dropped = st.sets(st.sampled_from(sorted(record))).map(
        lambda names: {k: v for k, v in record.items() if k not in names}
    )
    extra = st.dictionaries(st.text(max_size=10), values, max_size=2).map(
        lambda more: {**record, **more}
    )
    records = st.lists(st.one_of(mutated, dropped, extra), max_size=4)
    return st.one_of(
        records.map(lambda items: {"records": items}),
        st.dictionaries(st.text(max_size=10), values, max_size=3),
        values,
    )


@pytest.mark.slow  # starts the service (seconds each): CI runs it
def test_no_request_body_gets_a_5xx(service):
    """Property-based: whatever JSON arrives, the answer is 2xx or 4xx, never a 5xx."""
    from hypothesis import HealthCheck, given, settings

    url, key, _, scorer = service

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(fuzzed_bodies(scorer.example_record()))
    def check(body: Any) -> None:
        status, _, answer = call(f"{url}/v1/predict", body, key)
        assert status < 500, (body, status, answer)

    check()
