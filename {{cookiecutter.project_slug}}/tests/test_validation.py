"""Validation: one clear line per problem, and everything that would break a later stage stops
the pipeline here, before models and metrics can be overwritten."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }}.core.config import DeclaredBound
from {{ cookiecutter.package_name }}.core.contract import (
    DataContract,
    infer_contract,
    load_contract,
)
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.source import RowNumbers
from {{ cookiecutter.package_name }}.pipeline.ingest import run_ingest
from {{ cookiecutter.package_name }}.pipeline.validate import run_validate, validate_frame

LINES = RowNumbers(line_offset=2)


def contract_of(frame: pd.DataFrame, task: str = "binary_classification") -> DataContract:
    return infer_contract(frame, source="data/external/data.csv", target="target", task=task)


def violation(frame: pd.DataFrame, contract: DataContract, task: str = "binary_classification"):
    with pytest.raises(PipelineError) as caught:
        validate_frame(frame, contract, max_examples=5, rows=LINES, task=task)
    return str(caught.value)


def problem_lines(message: str) -> list[str]:
    return [line for line in message.splitlines() if line.startswith("  - ")]


def stages(project) -> dict:
    params = project.params()
    run_ingest(params)
    run_validate(params)
    return json.loads((project.root / "reports/validation.json").read_text())


def test_one_bad_cell_is_one_line_naming_the_value_and_its_line(binary_frame):
    """Was four lines, two of them TypeError("Invalid comparison between dtype=string and
    float"); a real missing value in the same column is not counted as a failure."""
    contract = contract_of(binary_frame)
    frame = binary_frame.astype({"income": object})
    frame.loc[7, "income"] = "fifty"
    frame.loc[8, "income"] = None
    message = violation(frame, contract)
    lines = problem_lines(message)
    assert lines == [
        "  - column 'income' is numeric in schema.yaml (dtype float64), but 1 of its 299 values "
        "is not a number: 'fifty' (line 9). Fix these values or empty those cells (an empty "
        "cell counts as missing)."
    ]
    assert "TypeError" not in message
    assert "line numbers are those of the CSV file" in message


def declared(contract: DataContract, column: str, **bound: float) -> DataContract:
    """The contract with a declared (hard) bound on `column`, as validate.bounds gives it."""
    contract.columns[column] = contract.columns[column].declared(DeclaredBound(**bound))
    return contract


def test_values_outside_declared_bounds_are_named_with_their_lines(binary_frame):
    contract = declared(contract_of(binary_frame), "age", min=0, max=120)
    frame = binary_frame.copy()
    frame.loc[[4, 9], "age"] = [1000.0, -1000.0]
    lines = problem_lines(violation(frame, contract))
    assert len(lines) == 2
    above = next(line for line in lines if "above its max" in line)
    assert "less_than_or_equal_to" in above
    assert "1000 (line 6)" in above
    assert "validate.bounds.age.max in params.yaml" in above
    assert any("below its min" in line and "-1000 (line 11)" in line for line in lines)


def test_infinite_values_stop_the_run(binary_frame):
    """Was: a contract with min: -.inf, then a ValueError traceback from train."""
    contract = contract_of(binary_frame)
    frame = binary_frame.copy()
    frame.loc[2, "income"] = np.inf
    (line,) = problem_lines(violation(frame, contract))
    assert "column 'income' has 1 infinite value: inf (line 4)" in line
    assert "empty those cells" in line


def test_missing_column_is_named_with_the_fix(binary_frame):
    contract = contract_of(binary_frame)
    (line,) = problem_lines(violation(binary_frame.drop(columns="income"), contract))
    assert "column 'income' is in schema.yaml but not in the data" in line
    assert "column_in_dataframe" not in line


def test_missing_target_value_names_the_setting(multiclass_frame):
    contract = contract_of(multiclass_frame, "multiclass")
    frame = multiclass_frame.copy()
    frame.loc[[0, 5], "target"] = None
    (line,) = problem_lines(violation(frame, contract, "multiclass"))
    assert "column 'target': 2 values missing: line 2, line 7" in line
    assert "data.missing_target: drop" in line


def test_unseen_class_is_named(multiclass_frame):
    contract = contract_of(multiclass_frame, "multiclass")
    frame = multiclass_frame.copy()
    frame.loc[0, "target"] = "extreme"
    (line,) = problem_lines(violation(frame, contract, "multiclass"))
    assert "'extreme' (line 2)" in line and "allowed" in line


def test_a_single_class_stops_the_run(binary_frame):
    """Was: passed validation, then train failed and models/ was gone."""
    frame = binary_frame.assign(target=1)
    message = violation(frame, contract_of(frame))
    assert "target 'target' has a single class in this batch (1)" in message


def test_a_class_too_rare_for_both_sides_stops_the_run(binary_frame):
    frame = binary_frame.astype({"target": str})
    frame.loc[0, "target"] = "rare"
    message = violation(frame, contract_of(frame, "multiclass"), "multiclass")
    assert "class 'rare' (1) has fewer than 2 rows" in message


def test_three_classes_for_a_binary_task_stops_the_run(multiclass_frame):
    message = violation(multiclass_frame, contract_of(multiclass_frame, "multiclass"))
    assert "set task: multiclass" in message


def test_too_few_rows_is_named(regression_frame):
    contract = contract_of(regression_frame, "regression")
    message = violation(regression_frame.head(5), contract, "regression")
    assert "the batch has 5 rows; schema.yaml asks for at least 20 (min_rows)" in message


def test_empty_frame_is_named(regression_frame):
    contract = contract_of(regression_frame, "regression")
    assert "empty" in violation(regression_frame.head(0), contract, "regression")


def test_examples_are_capped(binary_frame):
    """max_examples keeps the message short when many rows break a rule."""
    contract = declared(contract_of(binary_frame), "age", max=120)
    frame = binary_frame.assign(age=5000.0)
    with pytest.raises(PipelineError) as caught:
        validate_frame(frame, contract, max_examples=2)
    message = str(caught.value)
    assert f"{len(frame)} values above its max" in message
    assert message.count("row ") == 2


# --------------------------------------------------------------------------------------------
# Through the stage
# --------------------------------------------------------------------------------------------
def test_a_header_only_file_is_a_clear_error(project):
    """Was: a pydantic ValidationError traceback for a new source."""
    (project.root / "data/external/data.csv").write_text("age,income,plan,region,target\n")
    with pytest.raises(PipelineError, match="has no rows"):
        stages(project)
    assert not (project.root / "schema.yaml").exists()


def test_a_corrected_file_passes_after_a_single_class_one_was_rejected(project):
    """Was: the contract was saved with allowed: [1] and the corrected file then rejected."""
    project.write_data(project.frame.assign(target=1))
    with pytest.raises(PipelineError, match="single class"):
        stages(project)
    assert not (project.root / "schema.yaml").exists()
    project.write_data(project.frame)
    assert stages(project)["status"] == "passed"


def test_dropped_rows_are_counted_in_the_report(project, capsys):
    frame = project.frame.astype({"target": "Int64"})
    frame.loc[[3, 4], "target"] = pd.NA
    project.write_data(frame)
    report = stages(project)
    assert report["dropped_rows"] == {"missing_target": 2}
    assert report["rows"] == len(frame) - 2
    assert any(w["kind"] == "missing_target" for w in report["warnings"])
    err = capsys.readouterr().err
    assert "dropped 2 of 300 rows whose target 'target' is missing" in err


def test_an_extra_column_in_a_later_batch_is_reported(project):
    """Was: silently ignored."""
    stages(project)
    project.write_data(project.frame.assign(tenure=np.arange(300) % 24))
    report = stages(project)
    assert report["ignored_columns"] == ["tenure"]
    (extra,) = [w for w in report["warnings"] if w["kind"] == "extra_column"]
    assert extra["column"] == "tenure"
    suggested = "tenure: {kind: numeric, nullable: true, observed: {min: 0.0, max: 23.0}}"
    assert suggested in extra["message"]
    assert "data.drop" in extra["message"]


def test_unseen_categories_are_reported_then_can_stop_the_run(project, capsys):
    stages(project)
    frame = project.frame.copy()
    frame.loc[[1, 2, 3], "region"] = ["north-east", "north-east", "moon"]
    project.write_data(frame)
    report = stages(project)
    assert report["unseen_categories"]["region"]["values"] == {"north-east": 2, "moon": 1}
    (warned,) = [w for w in report["warnings"] if w["kind"] == "unseen_categories"]
    assert "'north-east' (2), 'moon' (1) (first at line 3, line 4, line 5)" in warned["message"]
    assert "warning: column 'region'" in capsys.readouterr().err
    project.write_params(validate={"unseen_categories": "error"})
    with pytest.raises(PipelineError, match=r"validate\.unseen_categories: warn"):
        stages(project)


def test_a_time_column_that_is_not_a_time_stops_the_run(project):
    frame = project.frame.assign(when=pd.date_range("2024-01-01", periods=300).astype(str))
    frame.loc[6, "when"] = "soon"
    project.write_data(frame)
    project.write_params(split={"method": "time", "time_column": "when"})
    with pytest.raises(PipelineError, match=r"'when' \(split.time_column\).*'soon' \(line 8\)"):
        stages(project)


def test_a_hand_edited_rule_still_applies(project):
    stages(project)
    schema = project.root / "schema.yaml"
    edited = yaml.safe_load(schema.read_text())
    edited["columns"]["plan"]["allowed"] = ["basic", "plus"]
    schema.write_text(yaml.safe_dump(edited), encoding="utf-8")
    with pytest.raises(PipelineError, match="'premium'"):
        stages(project)
    assert load_contract(schema).columns["plan"].allowed == ["basic", "plus"]


# --------------------------------------------------------------------------------------------
# What inference cannot decide, and settings that name missing columns
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_an_empty_feature_column_stops_the_run_naming_the_fix(project, suffix):
    """Was: inferred (categorical, no categories), trained on, no warning."""
    source = f"data/external/data{suffix}"
    project.write_data(project.frame.assign(notes=np.nan), source)
    project.write_params(data={"source": source})
    with pytest.raises(PipelineError) as caught:
        stages(project)
    (line,) = problem_lines(str(caught.value))
    assert "column 'notes' has no value in any of the 300 rows" in line
    assert "data.drop: [notes]" in line
    assert not (project.root / "schema.yaml").exists()
    project.write_params(data={"drop": ["notes"]})
    assert stages(project)["status"] == "passed"


def test_a_feature_emptied_in_a_later_batch_stops_the_run(project):
    stages(project)
    project.write_data(project.frame.assign(income=np.nan))
    with pytest.raises(PipelineError, match="column 'income' has no value in any"):
        stages(project)


def test_numbers_mixed_with_text_in_a_new_source_stop_the_run(project):
    """Was: trained as a categorical column with one level per number, with a warning."""
    frame = project.frame.copy()
    frame["weight"] = (frame["age"] * 1.7).round(1).astype(str)
    frame.loc[[4, 9], "weight"] = ["unknown", "12 kg"]
    project.write_data(frame)
    with pytest.raises(PipelineError) as caught:
        stages(project)
    (line,) = problem_lines(str(caught.value))
    assert "column 'weight' mixes numbers and text: " in line
    assert "'unknown' (line 6), '12 kg' (line 11)" in line
    assert "data.numeric: [weight]" in line and "data.categorical: [weight]" in line
    assert not (project.root / "schema.yaml").exists()
    project.write_params(data={"categorical": ["weight"]})
    assert stages(project)["status"] == "passed"


def test_mixed_numbers_that_look_like_decimal_commas_name_csv_decimal(project):
    frame = project.frame.copy()
    frame["rate"] = [f"{i % 7},5" if i % 3 == 0 else str(i % 7) for i in range(len(frame))]
    project.write_data(frame)
    with pytest.raises(PipelineError, match=r"'rate' mixes numbers.*data\.csv_decimal: ','"):
        stages(project)


def test_a_text_column_with_a_few_numbers_is_a_category(project):
    """Sizes S, M, L and 38: mostly text, so a category; no question asked."""
    frame = project.frame.copy()
    frame["size"] = np.where(np.arange(len(frame)) % 10 == 0, "38", ["S", "M", "L"] * 100)
    project.write_data(frame)
    assert stages(project)["status"] == "passed"


def test_a_text_target_in_regression_says_what_to_check(make_project):
    """Was: advised data.missing_target: drop, which is already set."""
    project = make_project("regression")
    labels = np.where(project.frame["age"] > 40, "yes", "no")
    project.write_data(project.frame.assign(target=labels))
    with pytest.raises(PipelineError) as caught:
        stages(project)
    (line,) = problem_lines(str(caught.value))
    assert line.startswith("  - target 'target' holds text, but task: regression needs a number")
    assert "data.target" in line and "task" in line and "data.csv_decimal" in line
    assert "missing_target" not in str(caught.value)


@pytest.mark.parametrize(
    ("split", "setting", "missing", "guess"),
    [
        ({"method": "hash", "key": ["idd"]}, "split.key", "idd", "'id'"),
        ({"method": "group", "group_column": "Plan"}, "split.group_column", "Plan", "'plan'"),
        ({"method": "time", "time_column": "dte"}, "split.time_column", "dte", "'date'"),
    ],
)
def test_a_split_setting_naming_a_missing_column_stops_before_anything_is_written(
    project, split, setting, missing, guess
):
    """Was: validate rewrote schema.yaml, then a KeyError traceback in the split stage."""
    frame = project.frame.assign(
        id=np.arange(len(project.frame)), date=pd.date_range("2024-01-01", periods=300)
    )
    project.write_data(frame)
    stages(project)
    schema = (project.root / "schema.yaml").read_text()
    project.write_params(split={"key": None, "time_column": None, "group_column": None, **split})
    with pytest.raises(PipelineError) as caught:
        stages(project)
    message = str(caught.value)
    assert message.startswith(f"{setting} names column {missing!r}, which the data does not have")
    assert f"did you mean {guess}" in message
    assert "its columns are: age, income, plan, region, target, id, date." in message
    assert (project.root / "schema.yaml").read_text() == schema


def test_a_date_feature_is_advised_not_listed_as_categories(project):
    """Was: a column of yearly dates (2019-01-01, ...) became a category list, and every new
    year was an "unseen" category; a constant column passed without a word."""
    rng = np.random.default_rng(0)
    years = rng.choice([2019, 2020, 2021], len(project.frame))
    frame = project.frame.assign(
        season=pd.to_datetime([f"{year}-01-01" for year in years]), currency="EUR"
    )
    project.write_data(frame, "data/external/data.parquet")
    project.write_params(data={"source": "data/external/data.parquet"})
    report = stages(project)
    assert report["status"] == "passed"
    assert load_contract(project.root / "schema.yaml").columns["season"].categories is None
    by_column = {item["column"]: item for item in report["warnings"]}
    assert by_column["season"]["kind"] == "date"
    assert "(e.g. '2019-01-01' and '2021-01-01')" in by_column["season"]["message"]
    assert "split.time_column: season" in by_column["season"]["message"]
    assert by_column["currency"]["kind"] == "constant"
    # Next year's batch: no unseen categories for the date.
    later = frame.assign(season=pd.Timestamp("2022-01-01"))
    project.write_data(later, "data/external/data.parquet")
    assert stages(project)["unseen_categories"] == {}


# --------------------------------------------------------------------------------------------
# Observed ranges warn; declared bounds stop
# --------------------------------------------------------------------------------------------
def test_a_grown_batch_beyond_the_observed_range_passes_and_is_counted(project, capsys):
    """Was: the first batch's range plus 50% was a hard rule, so a retrain on appended rows of
    the same population stopped (1012 > 876 square feet), and only a hand edit of schema.yaml
    got past it. Now the rows pass, are counted and quoted, and the observed range widens."""
    stages(project)
    first = load_contract(project.root / "schema.yaml").columns["income"].observed
    grown = pd.concat([project.frame, project.frame.head(3).assign(income=first.max * 3)])
    project.write_data(grown.reset_index(drop=True))
    report = stages(project)
    assert report["status"] == "passed"
    outside = report["outside_observed_range"]["income"]
    assert (outside["below"], outside["above"]) == (0, 3)
    assert outside["observed"] == [first.min, first.max]
    (warned,) = [w for w in report["warnings"] if w["kind"] == "outside_observed_range"]
    assert warned["column"] == "income" and "3 values above" in warned["message"]
    assert "(line 302)" in warned["message"] and "validate.bounds" in warned["message"]
    assert "outside its observed range" in capsys.readouterr().err
    widened = load_contract(project.root / "schema.yaml").columns["income"]
    assert widened.observed.max >= first.max * 3 and widened.max is None
    assert report["observed_range_widened"] == ["income"]
    assert stages(project)["outside_observed_range"] == {}, "the next run has nothing new"


def test_a_declared_bound_in_params_is_hard(project):
    """validate.bounds is the way to make a bound a rule: copied into schema.yaml, enforced,
    and taken back out when removed from params.yaml."""
    stages(project)
    project.write_params(validate={"bounds": {"income": {"min": 0, "max": 1000}}})
    with pytest.raises(PipelineError) as caught:
        stages(project)
    message = str(caught.value)
    assert "column 'income'" in message and "above its max, a declared bound" in message
    assert "validate.bounds.income.max" in message
    project.write_params(validate={"bounds": {"income": {"min": 0, "max": 10**9}}})
    report = stages(project)
    changed = "'income': declared bounds min 0, max 1e+09 (validate.bounds)"
    assert changed in report["schema_changes"]
    rule = load_contract(project.root / "schema.yaml").columns["income"]
    assert (rule.min, rule.max) == (0, 10**9)
    project.write_params(validate={"bounds": {}})
    report = stages(project)
    assert "'income': declared bounds removed (validate.bounds)" in report["schema_changes"]
    assert load_contract(project.root / "schema.yaml").columns["income"].max is None


def test_a_bound_on_a_column_that_is_not_numeric_is_named(project):
    project.write_params(validate={"bounds": {"plan": {"max": 3}}})
    with pytest.raises(PipelineError, match=r"validate.bounds in params.yaml names 'plan'"):
        stages(project)


def test_a_contract_of_the_older_format_reads_its_bounds_as_observed(project):
    """schema.yaml written before observed ranges: its inferred min/max were hard; they are
    now the observed range, and the upgrade is said once."""
    stages(project)
    path = project.root / "schema.yaml"
    body = yaml.safe_load(path.read_text())
    del body["settings"]["bounds"]
    for rule in body["columns"].values():
        if "observed" in rule:
            rule.update(rule.pop("observed"))
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    old_max = body["columns"]["income"]["max"]
    project.write_data(project.frame.assign(income=project.frame["income"] * 2))
    report = stages(project)
    assert report["status"] == "passed"
    assert "older template" in report["schema_changes"][0]
    rule = load_contract(path).columns["income"]
    assert rule.max is None and rule.observed.max >= old_max * 1.9


def test_range_margin_is_refused_with_its_replacement(project):
    project.write_params(validate={"range_margin": 0.5})
    with pytest.raises(PipelineError, match=r"range_margin is gone.*validate\.bounds"):
        project.params()
