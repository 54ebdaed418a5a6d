"""Train/holdout split: rows keep their side as data grows, every method's guarantees, and the
split definition written for later stages."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.core.contract import DataContract, infer_contract
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.pipeline.ingest import run_ingest
from {{ cookiecutter.package_name }}.pipeline.split import (
    holdout_mask,
    holdout_under,
    row_hashes,
    run_split,
    split_frame,
)
from {{ cookiecutter.package_name }}.pipeline.validate import run_validate


def contract_of(frame: pd.DataFrame, task: str, split_columns=()) -> DataContract:
    return infer_contract(
        frame,
        source="data/external/data.csv",
        target="target",
        task=task,
        split_columns=tuple(split_columns),
    )


def split_with(project, frame: pd.DataFrame, **split):
    """Split `frame` with the project's params and these split settings."""
    project.write_params(
        split={"method": "hash", "key": None, "time_column": None, "group_column": None, **split}
    )
    params = project.params()
    contract = contract_of(frame, project.task, params.split.columns)
    return split_frame(frame, params, contract)


def holdout_ids(test: pd.DataFrame) -> set[int]:
    return set(test["id"])


def with_ids(frame: pd.DataFrame, start: int = 0) -> pd.DataFrame:
    return frame.assign(id=np.arange(start, start + len(frame)))


# --------------------------------------------------------------------------------------------
# hash (the default)
# --------------------------------------------------------------------------------------------
def test_appended_rows_never_move_old_rows(project, frame_for):
    """The guarantee of the default split: with 10% more rows, every old holdout row stays in
    the holdout and every old training row stays in training."""
    old = with_ids(frame_for("binary_classification", n_rows=1000, seed=1))
    new = with_ids(frame_for("binary_classification", n_rows=100, seed=2), start=1000)
    _, before, _ = split_with(project, old.drop(columns="id"), method="hash")
    _, test_old, _ = split_with(project, old, method="hash", key="id")
    _, test_all, _ = split_with(project, pd.concat([old, new]), method="hash", key="id")
    assert holdout_ids(test_all) & set(old["id"]) == holdout_ids(test_old)
    # Without a key the row's contents decide, with the same guarantee.
    _, test_grown, _ = split_with(project, pd.concat([old, new]).drop(columns="id"), method="hash")
    key = ["age", "income", "plan", "region"]
    old_rows = test_grown.merge(old[key], on=key)
    assert len(old_rows) == len(before)


def test_hash_share_is_close_to_test_size_in_every_class(project, frame_for):
    frame = frame_for("multiclass", n_rows=3000, seed=3)
    _, test, _ = split_with(project, frame, method="hash")
    assert abs(len(test) / len(frame) - 0.25) < 0.03
    for label, count in frame["target"].value_counts().items():
        share = (test["target"] == label).sum() / count
        assert abs(share - 0.25) < 0.05, (label, share)


def few_values(n_rows: int, seed: int = 0) -> pd.DataFrame:
    """Twelve feature combinations only, as in a low-cardinality data set: most rows have
    identical copies."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "flag": rng.integers(0, 2, n_rows),
            "plan": rng.choice(["basic", "plus", "premium"], n_rows),
            "small": rng.integers(0, 2, n_rows).astype(float),
            "target": rng.integers(0, 2, n_rows),
        }
    )


def test_identical_rows_spread_over_both_sides_in_the_test_size_share(project):
    """Content hashing put every copy of a row on one side: on twelve combinations the holdout
    was whole combinations (a share far from test_size, rows never seen in training). The k-th
    copy now hashes with k: the share is test_size, every holdout combination is also in
    training, and appended copies never move the rows before them."""
    old, grown = few_values(1000), pd.concat([few_values(1000), few_values(500, seed=1)])
    grown = grown.reset_index(drop=True)
    train, test, definition = split_with(project, old, method="hash")
    assert abs(len(test) / len(old) - 0.25) < 0.04
    features = ["flag", "plan", "small"]
    held = test[features].drop_duplicates()
    assert len(held.merge(train[features].drop_duplicates())) == len(held)
    assert definition["occurrence"] is True and definition["warnings"] == []
    *_, again = split_with(project, grown, method="hash")
    assert again["fingerprint"] == definition["fingerprint"]
    before, after = holdout_under(old, definition), holdout_under(grown, again)
    assert before.sum() == len(test)
    assert np.array_equal(after[: len(old)], before)


def test_a_key_with_few_values_warns_that_the_holdout_share_is_off(project):
    """One key value holds 90% of the rows: the holdout is about 90% or about 10% of the rows,
    whichever side that value hashed to, and the split says so and what to do."""
    frame = few_values(400)
    frame["batch"] = ["big"] * 360 + [f"s{i // 2}" for i in range(40)]
    *_, definition = split_with(project, frame, method="hash", key="batch")
    (warning,) = definition["warnings"]
    assert "far from split.test_size=0.25" in warning
    assert "split.key 'batch' has 21 distinct values (the largest holds 90% " in warning
    assert "unique per row (an id) in split.key" in warning
    _, test, definition = split_with(project, with_ids(frame), method="hash", key="id")
    assert definition["warnings"] == [] and abs(len(test) / len(frame) - 0.25) < 0.06


def test_the_split_stage_prints_and_records_the_share_warning(project, capsys):
    frame = project.frame.assign(batch=["big"] * (len(project.frame) - 20) + ["a", "b"] * 10)
    project.write_data(frame)
    project.write_params(split={"key": ["batch"]})
    params = project.params()
    run_ingest(params)
    run_validate(params)
    run_split(params)
    (warning,) = json.loads((project.root / "reports/split.json").read_text())["warnings"]
    assert f"split: warning: {warning}" in capsys.readouterr().err
    assert "split.key 'batch' has 3 distinct values" in warning


def test_a_dropped_column_leaves_every_row_on_its_side(project):
    """Following a warning's advice (data.drop: [note]) used to redraw the split, the key being
    the row's feature values: the champion could no longer be compared. The key is every column
    of the source but the target, dropped columns included, so the holdout stays the same rows
    and the rule (fingerprint) the same."""
    frame = project.frame.assign(note=[f"n{i % 7}" for i in range(len(project.frame))])
    project.write_data(frame)
    sides = []
    for drop in ([], ["note"], ["note", "region"]):
        project.write_params(data={"drop": drop})
        params = project.params()
        run_ingest(params)
        run_validate(params)
        run_split(params)
        definition = json.loads((project.root / "reports/split.json").read_text())
        test = pd.read_parquet(project.root / "data/processed/test.parquet")
        assert set(drop) <= set(test.columns)  # kept: a champion that used them can score it
        sides.append((definition["fingerprint"], test[["age", "income"]]))
    for fingerprint, test in sides[1:]:
        assert fingerprint == sides[0][0]
        pd.testing.assert_frame_equal(test, sides[0][1])


@pytest.mark.parametrize("key", [None, ["id"]])
def test_dropped_columns_stay_in_the_split_and_never_reach_a_model(project, key):
    """Was: the split wrote its sides without the columns of data.drop, so a champion trained
    while one was a feature could not score the new holdout (the gate refused, naming it).
    Both sides keep them, whatever the key; the contract and the models never see them."""
    from {{ cookiecutter.package_name }}.core.artifacts import load_manifest
    from {{ cookiecutter.package_name }}.core.contract import load_contract
    from {{ cookiecutter.package_name }}.pipeline.train import run_train

    frame = with_ids(project.frame).assign(note=[f"n{i % 7}" for i in range(len(project.frame))])
    project.write_data(frame)
    project.write_params(data={"drop": ["note", "region"]}, split={"key": key})
    params = project.params()
    run_ingest(params)
    run_validate(params)
    run_split(params)
    train = pd.read_parquet(project.root / "data/processed/train.parquet")
    test = pd.read_parquet(project.root / "data/processed/test.parquet")
    assert {"note", "region"} <= set(train.columns) & set(test.columns)
    pd.testing.assert_series_equal(
        pd.concat([train, test]).set_index("id")["note"].sort_index(),
        frame.set_index("id")["note"].astype("string").sort_index(),
        check_dtype=False,
    )
    assert not {"note", "region"} & set(load_contract(params.paths.schema_file).columns)
    run_train(params)
    assert not {"note", "region"} & set(load_manifest(params.paths.models).spec.columns)


def test_hash_ignores_how_the_batch_was_typed():
    """An integer column that gained a missing value (now float), or text read as another
    string type, must not reshuffle the split."""
    ints = pd.DataFrame({"n": np.arange(50, dtype=np.int64), "s": [f"v{i}" for i in range(50)]})
    floats = ints.assign(n=ints["n"].astype("float64"), s=ints["s"].astype(object))
    kinds = {"n": "numeric", "s": "categorical"}
    assert np.array_equal(row_hashes(ints, kinds, 1), row_hashes(floats, kinds, 1))
    strings = ints.assign(s=ints["s"].astype("string"))
    assert np.array_equal(row_hashes(ints, kinds, 1), row_hashes(strings, kinds, 1))
    assert not np.array_equal(row_hashes(ints, kinds, 1), row_hashes(ints, kinds, 2))


def test_a_larger_test_size_only_adds_rows_to_the_holdout(project, frame_for):
    frame = with_ids(frame_for("binary_classification", n_rows=500))
    _, small, _ = split_with(project, frame, method="hash", key="id", test_size=0.2)
    _, large, _ = split_with(project, frame, method="hash", key="id", test_size=0.3)
    assert holdout_ids(small) < holdout_ids(large)


def test_seed_changes_the_split(project, frame_for):
    frame = with_ids(frame_for("binary_classification", n_rows=500))
    _, first, _ = split_with(project, frame, method="hash", key="id", seed=1)
    _, second, _ = split_with(project, frame, method="hash", key="id", seed=2)
    assert holdout_ids(first) != holdout_ids(second)


def test_stratify_keeps_a_rare_class_on_both_sides_and_records_the_move(project, frame_for):
    """Two rows of a class both hashed to one side: one is moved, and the definition records
    it so the same rule can be applied again."""
    frame = with_ids(frame_for("binary_classification", n_rows=400))
    project.write_params(split={"method": "hash", "key": ["id"]})
    params = project.params()
    contract = contract_of(frame, "binary_classification", ["id"])
    hashes = row_hashes(frame, {"id": "numeric"}, params.split.seed)
    in_train = np.flatnonzero(hashes >= np.uint64(int(0.25 * 2**64)))[:2]
    rare = frame.copy()
    rare["target"] = rare["target"].astype(str)
    rare.loc[in_train, "target"] = "rare"
    contract = contract_of(rare, "binary_classification", ["id"])
    train, test, definition = split_frame(rare, params, contract)
    assert (test["target"] == "rare").sum() == 1
    assert (train["target"] == "rare").sum() == 1
    assert len(definition["forced"]["holdout"]) == 1
    assert holdout_under(rare, definition).sum() == len(test)


# --------------------------------------------------------------------------------------------
# time, group, random
# --------------------------------------------------------------------------------------------
def dated(frame: pd.DataFrame) -> pd.DataFrame:
    days = pd.date_range("2024-01-01", periods=len(frame), freq="D")
    shuffled = np.random.default_rng(0).permutation(len(frame))
    return frame.assign(when=days[shuffled].strftime("%Y-%m-%d"))


def test_time_split_holds_out_the_latest_rows(project, frame_for):
    frame = dated(frame_for("binary_classification", n_rows=400))
    train, test, definition = split_with(project, frame, method="time", time_column="when")
    assert len(test) == 100
    assert train["when"].max() < test["when"].min()
    assert definition["time_cutoff"].startswith(train["when"].max())
    assert "when" not in contract_of(frame, "binary_classification", ["when"]).features


def test_time_split_accepts_numbers(project, frame_for):
    frame = frame_for("binary_classification", n_rows=200)
    frame["year"] = np.repeat(np.arange(2000, 2020), 10)
    _, test, definition = split_with(project, frame, method="time", time_column="year")
    assert set(test["year"]) == set(range(2015, 2020))
    assert definition["time_cutoff"] == 2014.0


@pytest.mark.parametrize("column", ["year", "when"])
def test_a_time_split_names_its_cutoff_plainly(project, frame_for, column):
    """Was: 'the rows after 2019.0' and 'after 2024-07-16T00:00:00+00:00'."""
    frame = dated(frame_for("binary_classification", n_rows=200))
    frame["year"] = np.repeat(np.arange(2000, 2020), 10)
    with pytest.raises(PipelineError) as caught:
        split_with(project, frame, method="time", time_column=column, test_size=0.01)
    cutoff = "2019" if column == "year" else r"2024-07-\d\d"
    assert re.search(rf"\(the rows after {cutoff} in '{column}'\)", str(caught.value))


def test_group_split_keeps_each_group_on_one_side(project, frame_for):
    frame = frame_for("binary_classification", n_rows=600)
    frame["customer"] = [f"c{i % 60}" for i in range(len(frame))]
    train, test, _ = split_with(project, frame, method="group", group_column="customer")
    assert not set(train["customer"]) & set(test["customer"])
    assert 0.1 < len(test) / len(frame) < 0.45


def test_group_split_with_a_class_on_one_side_only_says_what_to_do(project, frame_for):
    """All positives belong to one customer, so they land on one side together."""
    frame = frame_for("binary_classification", n_rows=400)
    frame["customer"] = [f"c{i % 40}" for i in range(len(frame))]
    frame.loc[frame["target"] == 1, "customer"] = "big"
    with pytest.raises(PipelineError, match=r"no row of class 1 .*whole groups of 'customer'"):
        split_with(project, frame, method="group", group_column="customer")


def test_random_split_is_stratified_and_reproducible():
    labels = pd.Series(["a"] * 200 + ["b"] * 80 + ["c"] * 20)
    mask = holdout_mask(labels, len(labels), 0.25, seed=0)
    for label, count in labels.value_counts().items():
        assert mask[labels.to_numpy() == label].sum() == round(count * 0.25)
    assert np.array_equal(mask, holdout_mask(labels, len(labels), 0.25, seed=0))
    assert mask.sum() == 75


def test_random_split_has_no_reapplicable_rule(project, frame_for):
    frame = frame_for("binary_classification")
    _, _, definition = split_with(project, frame, method="random")
    assert definition["stable"] is False
    assert holdout_under(frame, definition) is None


# --------------------------------------------------------------------------------------------
# The definition and the stage
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "split",
    [
        {"method": "hash"},
        {"method": "hash", "key": "id"},
        {"method": "time", "time_column": "when"},
        {"method": "group", "group_column": "id"},
    ],
)
def test_recorded_definition_reproduces_the_holdout(project, frame_for, split):
    """holdout_under applies a recorded definition to a frame: on the batch it was made on,
    it marks exactly the holdout rows."""
    frame = dated(with_ids(frame_for("binary_classification", n_rows=400)))
    _, test, definition = split_with(project, frame, **split)
    definition = json.loads(json.dumps(definition))  # as read back from reports/split.json
    mask = holdout_under(frame, definition)
    assert mask.sum() == len(test)
    assert set(frame.loc[mask, "id"]) == holdout_ids(test)


def test_fingerprint_names_the_rule_not_the_data(project, frame_for):
    frame = with_ids(frame_for("binary_classification", n_rows=400))
    *_, first = split_with(project, frame, method="hash", key="id")
    *_, grown = split_with(
        project, pd.concat([frame, with_ids(frame, 400)]), method="hash", key="id"
    )
    *_, other = split_with(project, frame, method="hash", key="id", test_size=0.3)
    assert first["fingerprint"] == grown["fingerprint"]
    assert first["fingerprint"] != other["fingerprint"]


def test_a_time_split_fingerprint_follows_its_cutoff(project, frame_for):
    """Rows back-filled before the old cutoff moved it, while the fingerprint stayed: the
    champion was compared on rows it trained on, "which it never trained on". The fingerprint
    now changes with the cutoff, and the champion's own cutoff picks the rows it never saw."""
    frame = dated(with_ids(frame_for("binary_classification", n_rows=400)))
    *_, first = split_with(project, frame, method="time", time_column="when")
    early = dated(with_ids(frame_for("binary_classification", n_rows=300, seed=5), 400))
    early["when"] = pd.to_datetime(early["when"]) - pd.Timedelta(days=1000)
    early["when"] = early["when"].dt.strftime("%Y-%m-%d")
    grown = pd.concat([frame, early], ignore_index=True)
    _, test, second = split_with(project, grown, method="time", time_column="when")
    assert first["time_cutoff"] != second["time_cutoff"]
    assert first["fingerprint"] != second["fingerprint"]
    first = json.loads(json.dumps(first))
    unseen = holdout_under(test, first)
    assert 0 < unseen.sum() < len(test)
    assert (test.loc[unseen, "when"] > first["time_cutoff"]).all()
    *_, again = split_with(project, frame, method="time", time_column="when")
    assert again["fingerprint"] == first["fingerprint"]


def test_too_small_a_side_is_a_pipeline_error(project, frame_for):
    frame = frame_for("binary_classification", n_rows=12)
    with pytest.raises(PipelineError, match=r"test_size=0\.05"):
        split_with(project, frame, method="random", test_size=0.05, stratify=False)


def test_run_split_writes_both_sides_and_the_definition(project):
    params = project.params()
    run_ingest(params)
    run_validate(params)
    summary = run_split(params)
    train = pd.read_parquet(project.root / "data/processed/train.parquet")
    test = pd.read_parquet(project.root / "data/processed/test.parquet")
    assert (summary["train_rows"], summary["test_rows"]) == (len(train), len(test))
    assert len(train) + len(test) == len(project.frame)
    definition = json.loads((project.root / "reports/split.json").read_text())
    assert definition["method"] == "hash"
    assert definition["row_contents"] is True
    assert definition["key"] == {
        "age": "numeric",
        "income": "numeric",
        "plan": "categorical",
        "region": "categorical",
    }
    assert definition["rows"] == {"train": len(train), "holdout": len(test)}
    assert set(definition["classes"]["holdout"]) == {"0", "1"}
    assert len(definition["fingerprint"]) == 64


def test_a_split_key_missing_from_the_contract_is_named_not_a_key_error(project, frame_for):
    """Was: KeyError: 'idd' from the split stage."""
    frame = with_ids(frame_for("binary_classification"))
    project.write_params(split={"method": "hash", "key": ["idd"]})
    contract = contract_of(frame, "binary_classification", ["id"])
    with pytest.raises(PipelineError) as caught:
        split_frame(frame, project.params(), contract)
    message = str(caught.value)
    assert "split.key names column 'idd', which schema.yaml does not have" in message
    assert "did you mean 'id'?" in message and "uv run dvc repro" in message
