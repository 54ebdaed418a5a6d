"""Preprocessing shared by training and serving, driven by the data contract.

Column roles come from schema.yaml, never from the dtypes of whatever frame arrives, so a batch
whose numeric column was read as text is converted (and counted as missing), not silently
treated as a new categorical feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }}.core.contract import DataContract

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer

MISSING_CATEGORY = "__missing__"


@dataclass(frozen=True)
class FeatureSpec:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @classmethod
    def from_contract(cls, contract: DataContract) -> FeatureSpec:
        features = contract.features
        return cls(
            numeric=tuple(name for name, rule in features.items() if rule.kind == "numeric"),
            categorical=tuple(
                name for name, rule in features.items() if rule.kind == "categorical"
            ),
        )

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def prepare_frame(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The model's input: contract columns in contract order, numbers as float, text as object.

    Categorical values become plain Python strings with NaN for missing, the one representation
    both scikit-learn encoders accept whatever dtype the batch was read with.
    """
    prepared = pd.DataFrame(index=frame.index)
    for column in spec.numeric:
        prepared[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in spec.categorical:
        # Missing is tested with notna(), not `is np.nan`: pandas 3 yields NaN objects that are
        # not np.nan, which str() would turn into a category named "nan".
        values = frame[column].astype(object)
        prepared[column] = values.map(str).where(values.notna(), np.nan)
    return prepared


def prepare_records(
    records: list[dict[str, Any]], spec: FeatureSpec, columns: list[str] | None = None
) -> pd.DataFrame:
    """What `prepare_frame` makes of records a request model validated (numbers as float64,
    text as str, missing as NaN), built column by column without pandas conversions: for a
    few records it is much faster. `columns`: a subset of the spec's, in that order."""
    data: dict[str, np.ndarray] = {}
    for name in columns or spec.columns:
        values = [record[name] for record in records]
        if name in spec.numeric:
            data[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        else:
            data[name] = np.array([np.nan if v is None else str(v) for v in values], dtype=object)
    return pd.DataFrame(data, columns=columns or spec.columns)


def linear_preprocessor(spec: FeatureSpec) -> ColumnTransformer:
    """Impute, scale and one-hot encode: what a linear baseline needs."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                list(spec.numeric),
            ),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY),
                    # Sparse: on millions of rows with many categories a dense one-hot matrix
                    # is gigabytes; the ColumnTransformer still returns a dense array when the
                    # result is mostly non-zero (its sparse_threshold).
                    OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5),
                ),
                list(spec.categorical),
            ),
        ],
        verbose_feature_names_out=False,
    )


def tree_preprocessor(spec: FeatureSpec) -> ColumnTransformer:
    """Integer-code categories for LightGBM's native categorical splits; keep NaN as missing.

    Unknown and missing categories become -1, which LightGBM treats as missing. The output
    puts categorical columns first, so they are features 0..k-1 (see `categorical_indices`).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    return ColumnTransformer(
        [
            (
                "categorical",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=-1,
                    encoded_missing_value=-1,
                    dtype=np.float64,
                ),
                list(spec.categorical),
            ),
            ("numeric", "passthrough", list(spec.numeric)),
        ],
        verbose_feature_names_out=False,
    )


def categorical_indices(spec: FeatureSpec) -> list[int]:
    return list(range(len(spec.categorical)))
