"""The data contract: inference, its YAML file, and following params.yaml when settings change."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }}.core.contract import (
    ColumnRule,
    DataContract,
    infer_contract,
    known_categories,
    load_contract,
    to_pandera,
)
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.features import FeatureSpec
from {{ cookiecutter.package_name }}.pipeline.ingest import run_ingest
from {{ cookiecutter.package_name }}.pipeline.validate import run_validate, validate_frame


def contract_of(frame: pd.DataFrame, task: str, **options) -> DataContract:
    return infer_contract(
        frame, source="data/external/data.csv", target="target", task=task, **options
    )


def stages(project, **data) -> dict:
    """ingest + validate, as `dvc repro` runs them, after changing data settings."""
    if data:
        project.write_params(data=data)
    params = project.params()
    run_ingest(params)
    run_validate(params)
    return json.loads((project.root / "reports/validation.json").read_text())


def contract(project) -> DataContract:
    return load_contract(project.root / "schema.yaml")


# --------------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------------
def test_inferred_kinds_and_bounds(binary_frame):
    """Numbers are numeric with their observed range (no hard bound); text is categorical with
    its categories."""
    inferred = contract_of(binary_frame, "binary_classification")
    age, income, plan = (inferred.columns[name] for name in ("age", "income", "plan"))
    assert (age.kind, plan.kind, inferred.columns["region"].kind) == (
        "numeric",
        "categorical",
        "categorical",
    )
    low, high = binary_frame["age"].min(), binary_frame["age"].max()
    assert (age.observed.min, age.observed.max) == pytest.approx((low, high), rel=1e-5)
    assert income.observed.min == pytest.approx(binary_frame["income"].min(), rel=1e-5)
    assert (age.min, age.max, income.min, income.max) == (None,) * 4, "observed is not a rule"
    assert plan.min is None and plan.observed is None and plan.allowed is None
    assert plan.categories == ["basic", "plus", "premium"]
    assert age.nullable and plan.nullable
    assert inferred.min_rows == 20
    assert list(inferred.features) == ["age", "income", "plan", "region"]


@pytest.mark.parametrize(
    ("task", "kind", "allowed"),
    [
        ("binary_classification", "numeric", [0, 1]),
        ("multiclass", "categorical", ["high", "low", "mid"]),
        ("regression", "numeric", None),
    ],
)
def test_inferred_target_rule(frame_for, task, kind, allowed):
    """The target may never be missing; a classification target admits only seen classes."""
    rule = contract_of(frame_for(task), task).columns["target"]
    assert rule.kind == kind
    assert rule.nullable is False
    assert rule.allowed == allowed


def test_a_batch_passes_the_contract_inferred_from_it(frame_for, task):
    frame = frame_for(task)
    validate_frame(frame, contract_of(frame, task), max_examples=5, task=task)


def test_the_pandera_schema_checks_what_serving_needs_of_a_frame():
    """to_pandera is the one engine for frames: categorical rules compare text (as the model
    reads a value: a code 1 is "1"), numbers must be finite, the known categories are checked
    when asked (serving counts or refuses them), and the batch size only when asked."""
    import pandera.errors

    contract = DataContract(
        source="s",
        target="target",
        min_rows=5,
        columns={
            "code": ColumnRule(kind="categorical", allowed=[1, 2]),
            "plan": ColumnRule(kind="categorical", categories=["basic", "premium"]),
            "age": ColumnRule(kind="numeric"),
            "target": ColumnRule(kind="numeric", nullable=False),
        },
    )
    frame = pd.DataFrame(
        {
            "code": ["1", 2, "3", None],
            "plan": ["basic", "gold", None, "premium"],
            "age": [1.0, np.inf, None, 2.0],
            "target": [0.0, 1.0, 0.0, 1.0],
        }
    )

    def failures(**options) -> list[tuple]:
        try:
            to_pandera(contract, **options).validate(frame, lazy=True)
        except pandera.errors.SchemaErrors as error:
            cases = error.failure_cases[["column", "check", "index"]]
            return sorted(tuple(map(str, case)) for case in cases.itertuples(index=False))
        return []

    assert failures(min_rows=False) == [("age", "finite", "1"), ("code", "isin(['1', '2'])", "2")]
    assert ("plan", "known_category", "1") in failures(categories=True, min_rows=False)
    assert ("None", "at least 5 rows", "None") in failures()


def test_values_beyond_the_first_batchs_range_pass_validation():
    """Was: the first batch's range plus 50% was a hard rule, so real rows of the same
    population (1012 > 876 square feet) stopped a retrain. The observed range is no rule."""
    first = pd.DataFrame({"sqft": np.linspace(300, 876, 30), "target": np.arange(30.0)})
    inferred = contract_of(first, "regression")
    later = first.assign(sqft=first["sqft"] * 2.5)
    validate_frame(later, inferred, max_examples=5, task="regression")


def test_observed_ranges_are_rounded_outward_and_readable():
    """Rounding the range for readability must not exclude the batch it came from."""
    frame = pd.DataFrame({"x": [0.1234567, 0.5, 0.9876543] * 10, "target": [0.0, 1.0, 2.0] * 10})
    observed = contract_of(frame, "regression").columns["x"].observed
    assert observed.min <= 0.1234567
    assert observed.max >= 0.9876543
    assert len(repr(observed.max)) <= 10
    validate_frame(frame, contract_of(frame, "regression"), max_examples=5)


def test_infinite_values_do_not_become_bounds():
    frame = pd.DataFrame({"x": [1.0, 2.0, np.inf] * 10, "target": [0.0, 1.0, 2.0] * 10})
    rule = contract_of(frame, "regression").columns["x"]
    assert (rule.observed.min, rule.observed.max) == (1.0, 2.0)
    with pytest.raises(ValueError, match="finite"):
        ColumnRule(kind="numeric", max=float("inf"))


def test_categories_are_capped_for_high_cardinality_columns(binary_frame):
    frame = binary_frame.assign(name=[f"person {i}" for i in range(len(binary_frame))])
    inferred = contract_of(frame, "binary_classification", max_categories=10)
    assert inferred.columns["name"].categories is None
    assert known_categories(inferred) == {
        "plan": ["basic", "plus", "premium"],
        "region": ["east", "north", "south", "west"],
        "name": None,
    }


def test_too_many_target_classes_suggests_another_task():
    frame = pd.DataFrame({"x": np.arange(100.0), "target": np.arange(100.0)})
    with pytest.raises(PipelineError, match="task"):
        contract_of(frame, "multiclass")


def test_missing_target_column_is_named(binary_frame):
    with pytest.raises(PipelineError, match=r"data\.target"):
        contract_of(binary_frame.drop(columns="target"), "binary_classification")


def test_yaml_round_trip_one_line_per_column(tmp_path, multiclass_frame):
    """What is written to schema.yaml reads back as the same contract."""
    inferred = contract_of(multiclass_frame, "multiclass")
    path = tmp_path / "schema.yaml"
    path.write_text(inferred.to_yaml(), encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Data contract")
    assert "  age: {kind: numeric, nullable: true, observed: {min: " in text
    assert load_contract(path) == inferred


def test_invalid_contract_file_is_a_pipeline_error(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text("source: x\ntarget: y\ncolumns: {}\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="not a valid data contract"):
        load_contract(path)


def test_rule_consistency_is_checked():
    with pytest.raises(ValueError, match="numeric columns only"):
        ColumnRule(kind="categorical", min=0)
    with pytest.raises(ValueError, match="numeric columns only"):
        ColumnRule(kind="categorical", observed={"min": 0, "max": 1})
    with pytest.raises(ValueError, match="greater than max"):
        ColumnRule(kind="numeric", min=2, max=1)
    with pytest.raises(ValueError, match="categorical columns only"):
        ColumnRule(kind="numeric", categories=["a"])


# --------------------------------------------------------------------------------------------
# The contract on disk
# --------------------------------------------------------------------------------------------
def test_run_validate_infers_then_keeps_the_contract(project):
    """The first batch writes schema.yaml; later batches are checked against that file."""
    report = stages(project)
    assert report["status"] == "passed"
    assert "did not exist" in report["schema_inferred"]
    assert report["missing_values"] == {
        "age": int(project.frame["age"].isna().sum()),
        "plan": int(project.frame["plan"].isna().sum()),
    }
    schema = project.root / "schema.yaml"
    assert contract(project).source == "data/external/data.csv"
    # A hand-edited rule is respected: the file is not re-inferred for the same source.
    settings = yaml.safe_load(schema.read_text())
    settings["columns"]["income"]["max"] = 1.0
    schema.write_text(yaml.safe_dump(settings), encoding="utf-8")
    with pytest.raises(PipelineError, match="above its max"):
        run_validate(project.params())


def test_failing_first_batch_does_not_become_the_contract(project):
    """A bad first batch must not write schema.yaml, or its flaws would become the rule."""
    frame = project.frame.copy()
    frame.loc[0, "target"] = None
    project.write_data(frame)
    project.write_params(data={"missing_target": "error"})
    with pytest.raises(PipelineError, match="missing_target: drop"):
        stages(project)
    assert not (project.root / "schema.yaml").exists()
    assert not (project.root / "reports/validation.json").exists()


def test_contract_is_reinferred_when_source_changes(project, frame_for):
    stages(project)
    other = frame_for("binary_classification", seed=1).drop(columns="region")
    project.write_data(other, "data/external/other.csv")
    report = stages(project, source="data/external/other.csv")
    assert "changed" in report["schema_inferred"]
    assert contract(project).source == "data/external/other.csv"
    assert "region" not in contract(project).columns


# --------------------------------------------------------------------------------------------
# Settings always take effect: the contract follows params.yaml
# --------------------------------------------------------------------------------------------
def test_dropping_a_column_after_the_first_run_removes_it(project, capsys):
    """Was: `column_in_dataframe failed` for the dropped column."""
    stages(project)
    report = stages(project, drop=["region"])
    assert "region" not in contract(project).columns
    assert report["schema_changes"] == [
        "'region': removed (data.drop)",
        "settings: data.drop [] -> ['region']",
    ]
    assert "'region': removed (data.drop)" in capsys.readouterr().err
    # Undropping brings it back, inferred from the batch.
    stages(project, drop=[])
    assert contract(project).columns["region"].kind == "categorical"


def test_listing_a_column_as_categorical_changes_its_kind(project):
    """Was: silently ignored, the models still saw both columns as numeric."""
    project.write_data(project.frame.assign(code=np.arange(len(project.frame)) % 5))
    stages(project)
    assert contract(project).columns["code"].kind == "numeric"
    report = stages(project, categorical=["code"])
    rule = contract(project).columns["code"]
    assert (rule.kind, rule.categories) == ("categorical", ["0", "1", "2", "3", "4"])
    assert "code" in FeatureSpec.from_contract(contract(project)).categorical
    assert (
        "'code': numeric -> categorical, rules inferred again (data.categorical)"
        in (report["schema_changes"])
    )
    stages(project, categorical=[])  # back to its inferred kind
    assert contract(project).columns["code"].kind == "numeric"


def test_listing_a_column_as_numeric_changes_its_kind(project):
    frame = project.frame.assign(score=[str(i % 7) for i in range(len(project.frame))])
    project.write_data(frame.astype({"score": "string"}), "data/external/data.parquet")
    stages(project, source="data/external/data.parquet")
    assert contract(project).columns["score"].kind == "categorical"
    stages(project, numeric=["score"])
    rule = contract(project).columns["score"]
    assert (rule.kind, rule.observed.min) == ("numeric", 0.0)
    assert "score" in FeatureSpec.from_contract(contract(project)).numeric


def test_setting_csv_decimal_turns_text_columns_into_numbers(project):
    """Was: adding csv_decimal: ',' left the columns categorical."""
    project.frame.to_csv(project.root / "data/external/data.csv", index=False, sep=";", decimal=",")
    report = stages(project, csv_separator=";")
    assert contract(project).columns["income"].kind == "categorical"
    assert any(w["kind"] == "number_format" and w["column"] == "income" for w in report["warnings"])
    report = stages(project, csv_decimal=",")
    assert contract(project).columns["income"].kind == "numeric"
    assert contract(project).columns["age"].observed.max > 40
    assert (
        "'income': categorical -> numeric, rules inferred again (data.csv_decimal)"
        in (report["schema_changes"])
    )
    assert not report["warnings"]


def test_setting_csv_thousands_turns_text_columns_into_numbers(project):
    frame = project.frame.assign(weight=[f"{1 + i % 4}.{i % 1000:03d}" for i in range(300)])
    frame.to_csv(project.root / "data/external/data.csv", index=False, sep=";", decimal=",")
    report = stages(project, csv_separator=";", csv_decimal=",")
    assert contract(project).columns["weight"].kind == "categorical"
    assert any("csv_thousands: '.'" in w["message"] for w in report["warnings"])
    stages(project, csv_thousands=".")
    rule = contract(project).columns["weight"]
    assert rule.kind == "numeric" and rule.observed.max >= 4000


def test_changing_csv_separator_keeps_every_rule(project):
    """The file re-exported with ';': same columns, same values; hand edits survive."""
    stages(project)
    schema = project.root / "schema.yaml"
    edited = yaml.safe_load(schema.read_text())
    edited["columns"]["income"]["max"] = 123456.0
    schema.write_text(yaml.safe_dump(edited), encoding="utf-8")
    project.frame.to_csv(project.root / "data/external/data.csv", index=False, sep=";")
    report = stages(project, csv_separator=";")
    assert report["schema_changes"] == ["settings: data.csv_separator ',' -> ';'"]
    assert contract(project).columns["income"].max == 123456.0


def test_hand_edits_of_untouched_columns_survive_a_kind_change(project):
    project.write_data(project.frame.assign(code=np.arange(len(project.frame)) % 5))
    stages(project)
    schema = project.root / "schema.yaml"
    edited = yaml.safe_load(schema.read_text())
    edited["columns"]["age"]["max"] = 99.0
    schema.write_text(yaml.safe_dump(edited), encoding="utf-8")
    stages(project, categorical=["code"])
    assert contract(project).columns["age"].max == 99.0


def test_a_kind_edited_against_params_follows_params(project):
    """params.yaml wins over a hand edit that contradicts it: no silent disagreement."""
    project.write_data(project.frame.assign(code=np.arange(len(project.frame)) % 5))
    stages(project, categorical=["code"])
    schema = project.root / "schema.yaml"
    edited = yaml.safe_load(schema.read_text())
    edited["columns"]["code"] = {"kind": "numeric"}
    schema.write_text(yaml.safe_dump(edited), encoding="utf-8")
    report = stages(project)
    assert contract(project).columns["code"].kind == "categorical"
    assert report["schema_changes"] == [
        "'code': numeric -> categorical, rules inferred again (data.categorical)"
    ]


def test_a_split_column_is_never_a_feature(project):
    project.write_data(project.frame.assign(customer=[f"c{i}" for i in range(300)]))
    stages(project)
    assert "customer" in contract(project).features
    project.write_params(split={"key": ["customer"]})
    stages(project)
    assert contract(project).columns["customer"].role == "split"
    assert "customer" not in contract(project).features
    assert "role: split" in (project.root / "schema.yaml").read_text()
    project.write_params(split={"key": None})
    stages(project)
    assert "customer" in contract(project).features


def test_data_encoding_is_a_reading_setting_the_contract_follows(project):
    """A file re-saved as UTF-8 from latin-1: the same values, so every rule is kept."""
    frame = project.frame.assign(plan=project.frame["plan"].replace("plus", "plus-café"))
    frame.to_csv(project.root / "data/external/data.csv", index=False, encoding="latin-1")
    stages(project, encoding="latin-1")
    assert contract(project).settings.encoding == "latin-1"
    assert "plus-café" in contract(project).columns["plan"].categories
    frame.to_csv(project.root / "data/external/data.csv", index=False, encoding="utf-8")
    report = stages(project, encoding="utf-8")
    assert report["schema_changes"] == ["settings: data.encoding 'latin-1' -> 'utf-8'"]


def test_a_rule_inferred_for_a_new_column_is_checked_like_a_new_source(project):
    """A column added by a settings change gets the questions a new source gets."""
    stages(project)
    frame = project.frame.assign(score=[str(i) if i % 9 else "n.a." for i in range(300)])
    project.write_data(frame)
    project.write_params(split={"method": "hash", "key": ["score"]})
    stages(project)  # a split column is no feature: nothing to ask
    project.write_params(split={"method": "hash", "key": None})
    with pytest.raises(PipelineError, match="'score' mixes numbers and text"):
        stages(project)
