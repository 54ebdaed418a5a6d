"""Train/holdout split: sizes, stratification and reproducibility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.data import run_ingest
from {{ cookiecutter.package_name }}.errors import PipelineError
from {{ cookiecutter.package_name }}.split import holdout_mask, run_split, split_frame


def test_unstratified_size_and_seed():
    """The holdout has round(n * test_size) rows; the same seed gives the same rows."""
    mask = holdout_mask(None, 300, 0.2, seed=3)
    assert mask.sum() == 60
    assert np.array_equal(mask, holdout_mask(None, 300, 0.2, seed=3))
    assert not np.array_equal(mask, holdout_mask(None, 300, 0.2, seed=4))


def test_stratification_keeps_class_shares():
    labels = pd.Series(["a"] * 200 + ["b"] * 80 + ["c"] * 20)
    mask = holdout_mask(labels, len(labels), 0.25, seed=0)
    for label, count in labels.value_counts().items():
        assert mask[labels.to_numpy() == label].sum() == round(count * 0.25)


def test_every_class_lands_on_both_sides():
    """A rare class still appears in training and in the holdout."""
    labels = pd.Series([0] * 98 + [1] * 2)
    for seed in range(5):
        mask = holdout_mask(labels, len(labels), 0.1, seed=seed)
        rare = labels.to_numpy() == 1
        assert mask[rare].sum() == 1
        assert (~mask[rare]).sum() == 1


def test_split_frame_partitions_the_rows(multiclass_frame):
    train, test = split_frame(multiclass_frame, "target", 0.25, seed=1, stratify=True)
    assert len(train) + len(test) == len(multiclass_frame)
    assert set(train["target"]) == set(test["target"]) == set(multiclass_frame["target"])
    combined = pd.concat([train, test]).sort_values(["age", "income"]).reset_index(drop=True)
    expected = multiclass_frame.sort_values(["age", "income"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(combined, expected)
    again, _ = split_frame(multiclass_frame, "target", 0.25, seed=1, stratify=True)
    pd.testing.assert_frame_equal(train, again)


def test_too_small_a_side_is_a_pipeline_error(frame_for):
    frame = frame_for("regression", n_rows=10)
    with pytest.raises(PipelineError, match=r"test_size=0\.05"):
        split_frame(frame, "target", 0.05, seed=0, stratify=False)


def test_run_split_writes_both_sides(project):
    run_ingest(project.params())
    summary = run_split(project.params())
    assert summary == {"train_rows": 225, "test_rows": 75}
    assert len(pd.read_parquet(project.root / "data/processed/test.parquet")) == 75
