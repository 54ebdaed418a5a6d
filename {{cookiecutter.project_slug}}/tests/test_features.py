"""Model inputs: column roles from the contract, NaN and unseen categories handled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.core.contract import infer_contract
from {{ cookiecutter.package_name }}.core.features import (
    FeatureSpec,
    linear_preprocessor,
    prepare_frame,
    tree_preprocessor,
)

SPEC = FeatureSpec(numeric=("age", "income"), categorical=("plan", "region"))


def test_spec_from_contract_excludes_the_target(binary_frame):
    contract = infer_contract(
        binary_frame,
        source="data/external/data.csv",
        target="target",
        task="binary_classification",
    )
    assert FeatureSpec.from_contract(contract) == SPEC
    assert SPEC.columns == ["age", "income", "plan", "region"]


def test_prepare_frame_types():
    """Numbers become float64 (text that is no number -> NaN); categories become str or NaN,
    whatever dtype the batch arrived with."""
    frame = pd.DataFrame(
        {
            "region": pd.Series(["north", None, "south"], dtype="string"),
            "plan": pd.Series([1, 2, None], dtype="Int64"),
            "income": ["1.5", "oops", None],
            "age": [30, 40, 50],
            "extra": [1, 2, 3],
        }
    )
    prepared = prepare_frame(frame, SPEC)
    assert list(prepared.columns) == SPEC.columns
    assert prepared["age"].dtype == np.float64
    assert prepared["income"].tolist()[0] == 1.5
    assert prepared["income"].isna().tolist() == [False, True, True]
    assert prepared["plan"].tolist()[:2] == ["1", "2"]
    assert prepared["plan"].isna().tolist() == [False, False, True]
    assert prepared["region"].tolist()[0] == "north"
    assert prepared["region"].isna().tolist() == [False, True, False]
    assert all(isinstance(value, str) for value in prepared["region"].dropna())


@pytest.fixture
def fitted_inputs(binary_frame):
    train = prepare_frame(binary_frame, SPEC)
    unseen = train.head(4).copy()
    unseen["plan"] = ["gold", np.nan, "basic", "gold"]
    unseen["age"] = [np.nan, 1.0, 2.0, np.nan]
    return train, unseen


def test_linear_preprocessor_handles_nan_and_unseen_categories(fitted_inputs):
    train, unseen = fitted_inputs
    assert train.isna().any().any()
    prep = linear_preprocessor(SPEC).fit(train)
    out = prep.transform(unseen)
    assert out.shape[0] == 4
    assert not np.isnan(out).any()


def test_linear_preprocessor_is_sparse_when_one_hot_columns_dominate():
    """Many categories: a sparse matrix (a dense one is gigabytes on millions of rows)."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, 500),
            "income": rng.normal(1, 0.1, 500),
            "plan": rng.choice([f"p{i}" for i in range(40)], 500),
            "region": rng.choice([f"r{i}" for i in range(40)], 500),
        }
    )
    out = linear_preprocessor(SPEC).fit_transform(prepare_frame(frame, SPEC))
    assert hasattr(out, "tocsr") and out.shape == (500, 82)
    assert out.nnz == 500 * 4


def test_tree_preprocessor_codes_unseen_and_missing_as_minus_one(fitted_inputs):
    """Categorical columns come first; LightGBM reads -1 as missing."""
    train, unseen = fitted_inputs
    prep = tree_preprocessor(SPEC).fit(train)
    assert list(prep.get_feature_names_out()) == ["plan", "region", "age", "income"]
    out = prep.transform(unseen)
    assert out[:, 0].tolist()[:3] == [-1.0, -1.0, 0.0]
    assert np.isnan(out[[0, 3], 2]).all(), "numeric NaN stays NaN for LightGBM"


@pytest.mark.parametrize("dtype", [None, "string", object])
def test_missing_categories_stay_missing_for_every_text_dtype(dtype):
    """A missing category must reach the encoders as NaN, never as the text 'nan'."""
    region = pd.Series(["north", None, "south"], dtype=dtype)
    frame = pd.DataFrame({"age": 1.0, "income": 2.0, "plan": "basic", "region": region})
    prepared = prepare_frame(frame, SPEC)
    assert prepared["region"].isna().tolist() == [False, True, False]
    assert "nan" not in prepared["region"].tolist()
