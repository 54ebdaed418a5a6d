"""The data contract: inference, its YAML file, and one clear message per broken rule."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.data import run_ingest
from {{ cookiecutter.package_name }}.errors import PipelineError
from {{ cookiecutter.package_name }}.schema import (
    ColumnRule,
    DataContract,
    infer_contract,
    load_contract,
    run_validate,
    validate_frame,
)


def contract_of(frame: pd.DataFrame, task: str, margin: float = 0.5) -> DataContract:
    return infer_contract(
        frame, source="data/external/data.csv", target="target", task=task, margin=margin
    )


def violation(frame: pd.DataFrame, contract: DataContract) -> str:
    with pytest.raises(PipelineError) as caught:
        validate_frame(frame, contract, max_examples=5)
    return str(caught.value)


def test_inferred_kinds_and_bounds(binary_frame):
    """Numbers are numeric with widened bounds; text is categorical; missing is allowed."""
    contract = contract_of(binary_frame, "binary_classification")
    age, income, plan = (contract.columns[name] for name in ("age", "income", "plan"))
    assert (age.kind, plan.kind, contract.columns["region"].kind) == (
        "numeric",
        "categorical",
        "categorical",
    )
    low, high = binary_frame["age"].min(), binary_frame["age"].max()
    assert age.max == pytest.approx(high + 0.5 * (high - low), rel=1e-5)
    assert age.min == income.min == 0.0, "a column never negative must not admit negatives"
    assert plan.min is None and plan.allowed is None
    assert age.nullable and plan.nullable
    assert contract.min_rows == 20
    assert list(contract.features) == ["age", "income", "plan", "region"]


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
    validate_frame(frame, contract_of(frame, task), max_examples=5)


def test_bounds_of_a_signed_column_widen_by_the_margin():
    frame = pd.DataFrame({"x": [-2.0, 0.0, 6.0] * 10, "target": [0.0, 1.0, 2.0] * 10})
    rule = contract_of(frame, "regression", margin=0.25).columns["x"]
    assert (rule.min, rule.max) == (-4.0, 8.0)


def test_bounds_are_rounded_outward_even_without_margin():
    """Rounding the bounds for readability must not exclude the batch they came from."""
    frame = pd.DataFrame({"x": [0.1234567, 0.5, 0.9876543] * 10, "target": [0.0, 1.0, 2.0] * 10})
    contract = contract_of(frame, "regression", margin=0.0)
    assert contract.columns["x"].min <= 0.1234567
    assert contract.columns["x"].max >= 0.9876543
    validate_frame(frame, contract, max_examples=5)


def test_too_many_target_classes_suggests_another_task():
    frame = pd.DataFrame({"x": np.arange(100.0), "target": np.arange(100.0)})
    with pytest.raises(PipelineError, match="task"):
        contract_of(frame, "multiclass")


def test_missing_target_column_is_named(binary_frame):
    with pytest.raises(PipelineError, match=r"data\.target"):
        contract_of(binary_frame.drop(columns="target"), "binary_classification")


def test_yaml_round_trip(tmp_path, multiclass_frame):
    """What is written to schema.yaml reads back as the same contract."""
    contract = contract_of(multiclass_frame, "multiclass")
    path = tmp_path / "schema.yaml"
    path.write_text(contract.to_yaml(), encoding="utf-8")
    assert path.read_text(encoding="utf-8").startswith("# Data contract")
    assert load_contract(path) == contract


def test_invalid_contract_file_is_a_pipeline_error(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text("source: x\ntarget: y\ncolumns: {}\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="not a valid data contract"):
        load_contract(path)


def test_rule_consistency_is_checked():
    with pytest.raises(ValueError, match="numeric columns only"):
        ColumnRule(kind="categorical", min=0)
    with pytest.raises(ValueError, match="greater than max"):
        ColumnRule(kind="numeric", min=2, max=1)


def test_missing_column_is_named(binary_frame):
    contract = contract_of(binary_frame, "binary_classification")
    message = violation(binary_frame.drop(columns="income"), contract)
    assert "'income'" in message
    assert "column_in_dataframe" in message


def test_non_numeric_value_in_numeric_column_is_named(binary_frame):
    contract = contract_of(binary_frame, "binary_classification")
    frame = binary_frame.astype({"income": object})
    frame.loc[7, "income"] = "n/a"
    message = violation(frame, contract)
    assert "column 'income'" in message
    assert "float64" in message
    assert "row 7: 'n/a'" in message


def test_out_of_range_value_is_named_with_its_row(binary_frame):
    contract = contract_of(binary_frame, "binary_classification")
    frame = binary_frame.copy()
    frame.loc[[4, 9], "age"] = [1000.0, -1000.0]
    message = violation(frame, contract)
    assert "column 'age'" in message
    assert "less_than_or_equal_to" in message
    assert "greater_than_or_equal_to" in message
    assert "row 4: 1000.0" in message
    assert "2 rules broken" in message


def test_missing_target_value_is_named(multiclass_frame):
    contract = contract_of(multiclass_frame, "multiclass")
    frame = multiclass_frame.copy()
    frame.loc[0, "target"] = None
    message = violation(frame, contract)
    assert "column 'target'" in message
    assert "not_nullable" in message


def test_unseen_class_is_named(multiclass_frame):
    contract = contract_of(multiclass_frame, "multiclass")
    frame = multiclass_frame.copy()
    frame.loc[0, "target"] = "extreme"
    message = violation(frame, contract)
    assert "column 'target'" in message
    assert "isin" in message


def test_too_few_rows_is_named(regression_frame):
    contract = contract_of(regression_frame, "regression")
    message = violation(regression_frame.head(5), contract)
    assert "at least 20 rows" in message


def test_empty_frame_is_named(regression_frame):
    contract = contract_of(regression_frame, "regression")
    message = violation(regression_frame.head(0), contract)
    assert "empty" in message
    assert "at least 1 row" in message


def test_examples_are_capped(binary_frame):
    """max_examples keeps the message short when many rows break a rule."""
    contract = contract_of(binary_frame, "binary_classification")
    frame = binary_frame.assign(age=5000.0)
    with pytest.raises(PipelineError) as caught:
        validate_frame(frame, contract, max_examples=2)
    message = str(caught.value)
    assert f"failed {len(frame)} times" in message
    assert message.count("row ") == 2


def test_run_validate_infers_then_keeps_the_contract(project):
    """The first batch writes schema.yaml; later batches are checked against that file."""
    run_ingest(project.params())
    report = run_validate(project.params())
    assert report["status"] == "passed"
    assert "did not exist" in report["schema_inferred"]
    assert report["missing_values"] == {
        "age": int(project.frame["age"].isna().sum()),
        "plan": int(project.frame["plan"].isna().sum()),
    }
    schema = project.root / "schema.yaml"
    assert load_contract(schema).source == "data/external/data.csv"
    # A hand-edited rule is respected: the file is not re-inferred for the same source.
    schema.write_text(schema.read_text().replace("max: ", "max: 0.0 #"), encoding="utf-8")
    with pytest.raises(PipelineError, match="less_than_or_equal_to"):
        run_validate(project.params())


def test_failing_first_batch_does_not_become_the_contract(project):
    """A bad first batch must not write schema.yaml, or its flaws would become the rule."""
    frame = project.frame.copy()
    frame.loc[0, "target"] = None
    project.write_data(frame)
    run_ingest(project.params())
    with pytest.raises(PipelineError, match="not_nullable"):
        run_validate(project.params())
    assert not (project.root / "schema.yaml").exists()
    assert not (project.root / "reports/validation.json").exists()


def test_contract_is_reinferred_when_source_changes(project, frame_for):
    run_ingest(project.params())
    run_validate(project.params())
    other = frame_for("binary_classification", seed=1).drop(columns="region")
    project.write_data(other, "data/external/other.csv")
    project.write_params(data={"source": "data/external/other.csv"})
    run_ingest(project.params())
    report = run_validate(project.params())
    assert "changed" in report["schema_inferred"]
    contract = load_contract(project.root / "schema.yaml")
    assert contract.source == "data/external/other.csv"
    assert "region" not in contract.columns
    saved = json.loads((project.root / "reports/validation.json").read_text())
    assert saved["schema_inferred"] == report["schema_inferred"]
