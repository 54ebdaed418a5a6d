"""A fitted preprocessing pipeline replayed on a few records with plain numpy: the serving path.

Scoring one record through scikit-learn's `Pipeline(ColumnTransformer, estimator)` costs about
2 ms, nearly all of it pandas and input checks around arithmetic that takes microseconds (the
estimator itself predicts in ~0.1 ms). The service answers single records, so it replays the
fitted transformers instead: a numeric column whose transformer is affine (impute, scale)
becomes `a + b * x` with a value for missing; a categorical column (impute, one-hot or ordinal
codes) becomes a table from each value to its output columns. Both are read off the fitted
transformers by probing them, so nothing about scikit-learn's internals is copied here, and the
result is checked against the pipeline on every known category, missing values and an unseen
one before it is used (`compile_pipeline` returns None when a transformer is neither, or when
any probe disagrees): the pipeline stays the reference, this is only its shortcut.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }}.core.features import FeatureSpec, prepare_records

UNSEEN = "\x00unseen"  # a category no training set contains: probes the unknown-value branch
TOLERANCE = 1e-9


@dataclass(frozen=True)
class _Affine:
    """Output column `column` = intercept + slope * x; `missing` when x is missing."""

    source: str
    column: int
    intercept: float
    slope: float
    missing: float


@dataclass(frozen=True)
class _Lookup:
    """Output columns of one categorical input: a row of `width` values per known category."""

    source: str
    columns: np.ndarray
    table: dict[Any, np.ndarray]
    missing: np.ndarray
    unseen: np.ndarray


@dataclass(frozen=True)
class _Constant:
    """Output columns that no input moves (e.g. a category present in every training row)."""

    columns: np.ndarray
    values: np.ndarray


Part = _Affine | _Lookup | _Constant


class CompiledPipeline:
    """`predict`/`predict_proba` of a fitted pipeline for records (column -> value), fast."""

    def __init__(self, estimator: Any, width: int, parts: list[Part]) -> None:
        self.estimator = estimator
        self.width = width
        self.affine = [part for part in parts if isinstance(part, _Affine)]
        self.lookups = [part for part in parts if isinstance(part, _Lookup)]
        self.constants = [part for part in parts if isinstance(part, _Constant)]
        self._sources = [part.source for part in self.affine]
        self._columns = np.array([part.column for part in self.affine], dtype=np.int64)
        self._intercepts = np.array([part.intercept for part in self.affine])
        self._slopes = np.array([part.slope for part in self.affine])
        self._missing = np.array([part.missing for part in self.affine])

    def transform(self, records: list[dict[str, Any]]) -> np.ndarray:
        """The matrix the estimator was trained on, from validated records (None = missing)."""
        out = np.empty((len(records), self.width))
        for constant in self.constants:
            out[:, constant.columns] = constant.values
        if self.affine:
            # dtype=float turns None into NaN; values are numbers the request model checked.
            raw = np.array([[record[name] for name in self._sources] for record in records], float)
            values = self._intercepts + self._slopes * raw
            out[:, self._columns] = np.where(np.isnan(raw), self._missing, values)
        for lookup in self.lookups:
            for row, record in enumerate(records):
                value = record[lookup.source]
                if value is None:
                    out[row, lookup.columns] = lookup.missing
                else:
                    out[row, lookup.columns] = lookup.table.get(str(value), lookup.unseen)
        return out

    def predict(self, records: list[dict[str, Any]]) -> np.ndarray:
        return self.estimator.predict(self.transform(records))

    def predict_proba(self, records: list[dict[str, Any]]) -> np.ndarray:
        return self.estimator.predict_proba(self.transform(records))


def _dense(matrix: Any) -> np.ndarray:
    return np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix, dtype=np.float64)


def _known_values(transformer: Any, position: int, contract_values: Iterable[Any] | None) -> set:
    """Every category the transformer may treat specially: the contract's and the encoder's."""
    values = {str(value) for value in contract_values or ()}
    steps = transformer.steps if hasattr(transformer, "steps") else [(None, transformer)]
    for _, step in steps:
        categories = getattr(step, "categories_", None)
        if categories is not None:
            values.update(str(value) for value in categories[position] if not pd.isna(value))
    return values


def _numeric_parts(
    transformer: Any, spec: FeatureSpec, columns: list[str], offset: int, scales: dict
) -> list[_Affine] | None:
    """Affine per column, or None: probes at 0, h, 2h (h: the column's magnitude, so the slope
    is not lost to rounding) and missing, one output per input."""
    step = {name: float(scales.get(name) or 1.0) for name in columns}
    probe: list[dict[str, float | None]] = [
        {name: k * step[name] for name in columns} for k in (0, 1, 2)
    ]
    probe.append(dict.fromkeys(columns))
    out = _dense(transformer.transform(prepare_records(probe, spec, columns)))
    if out.shape != (4, len(columns)):
        return None
    zero, one, two, missing = out
    rise = one - zero
    if not np.allclose(two, zero + 2 * rise, rtol=TOLERANCE, atol=TOLERANCE):
        return None
    return [
        _Affine(name, offset + i, float(zero[i]), float(rise[i] / step[name]), float(missing[i]))
        for i, name in enumerate(columns)
    ]


def _categorical_parts(
    transformer: Any, spec: FeatureSpec, columns: list[str], offset: int, categories: dict
) -> tuple[list[Part], int] | None:
    """One lookup per column: the outputs that move when it alone changes. None when an output
    moves with two columns (the transformer is not column-wise)."""
    known = {
        name: sorted(_known_values(transformer, i, categories.get(name)))
        for i, name in enumerate(columns)
    }
    reference = {name: (known[name][0] if known[name] else None) for name in columns}
    varied: dict[str, tuple[list[Any], np.ndarray]] = {}
    for name in columns:
        values = [*known[name], None, UNSEEN]
        rows = [{**reference, name: value} for value in values]
        varied[name] = (values, _dense(transformer.transform(prepare_records(rows, spec, columns))))
    width = next(iter(varied.values()))[1].shape[1]
    moves = {name: (out != out[0]).any(axis=0) for name, (_, out) in varied.items()}
    if (np.sum(list(moves.values()), axis=0) > 1).any():
        return None
    parts: list[Part] = []
    for name, (values, out) in varied.items():
        block = np.flatnonzero(moves[name])
        table = {str(value): out[i, block] for i, value in enumerate(values[:-2])}
        parts.append(_Lookup(name, offset + block, table, out[-2, block], out[-1, block]))
    # Outputs no column moves (e.g. a category seen in every row) are constants.
    constant = ~np.any(list(moves.values()), axis=0)
    base = next(iter(varied.values()))[1][0]
    if constant.any():
        parts.append(_Constant(offset + np.flatnonzero(constant), base[constant]))
    return parts, width


def compile_pipeline(
    model: Any,
    spec: FeatureSpec,
    categories: dict[str, list[Any] | None],
    scales: dict[str, float],
    checks: list[dict[str, Any]],
) -> CompiledPipeline | None:
    """The fast replica of `model` (a Pipeline of a ColumnTransformer and an estimator), or None
    when it has another shape, a transformer is not column-wise, or a check disagrees.

    `categories`: each categorical column's known values and `scales` each numeric column's
    magnitude (both from the data contract); `checks`: records to compare the replica with the
    pipeline on, with each column in turn missing and each category in turn.
    """
    steps = getattr(model, "steps", None)
    if not steps or len(steps) != 2 or not hasattr(steps[0][1], "transformers_"):
        return None
    prep, estimator = steps[0][1], steps[1][1]
    if getattr(prep, "remainder", "drop") != "drop":
        return None
    parts: list[Part] = []
    offset = 0
    for _, transformer, selected in prep.transformers_:
        columns = list(selected)
        if transformer == "drop" or not columns:
            continue
        if transformer == "passthrough":
            if not set(columns) <= set(spec.numeric):
                return None
            parts += [_Affine(name, offset + i, 0.0, 1.0, np.nan) for i, name in enumerate(columns)]
            offset += len(columns)
        elif set(columns) <= set(spec.numeric):
            numeric = _numeric_parts(transformer, spec, columns, offset, scales)
            if numeric is None:
                return None
            parts += numeric
            offset += len(numeric)
        elif set(columns) <= set(spec.categorical):
            categorical = _categorical_parts(transformer, spec, columns, offset, categories)
            if categorical is None:
                return None
            parts += categorical[0]
            offset += categorical[1]
        else:
            return None
    compiled = CompiledPipeline(estimator, offset, parts)
    return compiled if _agrees(compiled, model, spec, categories, checks) else None


def _agrees(
    compiled: CompiledPipeline,
    model: Any,
    spec: FeatureSpec,
    categories: dict[str, list[Any] | None],
    checks: list[dict],
) -> bool:
    """The replica's matrix equals the pipeline's on the checks, every known category of each
    column, missing values and an unseen category."""
    rows = list(checks)
    if rows:
        for name in spec.categorical:
            rows += [{**rows[0], name: value} for value in [*(categories.get(name) or []), UNSEEN]]
        for name in spec.columns:
            rows.append({**rows[0], name: None})
    if not rows:
        return False
    expected = _dense(model[:-1].transform(prepare_records(rows, spec)))
    actual = compiled.transform(rows)
    return expected.shape == actual.shape and bool(
        np.allclose(actual, expected, rtol=TOLERANCE, atol=TOLERANCE, equal_nan=True)
    )
