"""The data contract: which columns a batch has, of what kind, within which bounds.

The contract is inferred from the first batch of a source, written to schema.yaml for people to
read, edit and commit, and then every batch is checked against it with pandera. The same
contract tells features.py which columns are numeric or categorical, so training and serving
read column types from one place.

The file format is our own rather than pandera's YAML because the contract records what pandera
drops (the source it was inferred from, the target, each column's role, the known categories
and the params.yaml settings it follows); `to_pandera` builds the pandera schema that does the
checking.

params.yaml always wins: the contract records the data settings it was made with
(`settings:`), and when they change, `follow_settings` updates exactly the columns the change
affects (and keeps every other rule, hand edits included), so the contract never silently
disagrees with params.yaml.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from {{ cookiecutter.package_name }}.core.config import DataParams, Params
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.source import as_text, date_sample, is_numeric_series

Kind = Literal["numeric", "categorical"]
Role = Literal["feature", "split"]
MIN_ROWS = 20
MAX_INFERRED_CLASSES = 50

HEADER = """\
# Data contract, checked on every batch by the validate stage (see docs/data.md).
# Inferred from the first batch of `source`; edit the rules and commit.
# Per column: kind (numeric | categorical), nullable, min/max (numeric), allowed (the only values
# accepted), categories (the values a categorical feature had: new ones are reported, see
# validate.unseen_categories; absent for a column of dates or with more than
# validate.max_categories values),
# role: split (a column the split reads, never a feature).
# `settings` are the params.yaml data settings this contract follows: change them in params.yaml
# and the next `dvc repro` updates the affected columns here (and prints what changed).
"""


class ColumnRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind
    role: Role = "feature"
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: list[str | int | float | bool] | None = None
    categories: list[str] | None = None

    @model_validator(mode="after")
    def _bounds_fit_kind(self) -> ColumnRule:
        if self.kind == "categorical" and (self.min is not None or self.max is not None):
            raise ValueError("min/max apply to numeric columns only")
        if self.kind == "numeric" and self.categories is not None:
            raise ValueError("categories apply to categorical columns only")
        for name, bound in (("min", self.min), ("max", self.max)):
            if bound is not None and not math.isfinite(bound):
                raise ValueError(f"{name} must be a finite number, not {bound}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class ContractSettings(BaseModel):
    """The params.yaml `data` settings that shape the contract, as they were when it was made."""

    model_config = ConfigDict(extra="forbid")

    format: str = "auto"
    csv_separator: str = ","
    csv_decimal: str = "."
    csv_thousands: str | None = None
    encoding: str = "utf-8"
    drop: list[str] = []
    categorical: list[str] = []
    numeric: list[str] = []

    @classmethod
    def of(cls, data: DataParams) -> ContractSettings:
        return cls(**data.model_dump(include=set(cls.model_fields)))

    def reading(self) -> dict[str, Any]:
        """The settings that change how the file's text becomes values."""
        return self.model_dump(
            include={"format", "csv_separator", "csv_decimal", "csv_thousands", "encoding"}
        )


class DataContract(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    target: str
    min_rows: int = Field(MIN_ROWS, ge=1)
    settings: ContractSettings = ContractSettings()
    columns: dict[str, ColumnRule]

    @model_validator(mode="after")
    def _target_is_a_column(self) -> DataContract:
        if self.target not in self.columns:
            raise ValueError(f"target {self.target!r} is not among the columns")
        return self

    @property
    def features(self) -> dict[str, ColumnRule]:
        """The columns a model sees: all but the target and the columns the split reads."""
        return {
            name: rule
            for name, rule in self.columns.items()
            if name != self.target and rule.role == "feature"
        }

    @property
    def split_columns(self) -> list[str]:
        return [name for name, rule in self.columns.items() if rule.role == "split"]

    def to_yaml(self) -> str:
        body = self.model_dump(mode="json", exclude_none=True)
        for rule in body["columns"].values():
            if rule.get("role") == "feature":
                del rule["role"]
        # One line per column where it fits (flow style for rules of plain values).
        text = yaml.safe_dump(
            body, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100
        )
        return HEADER + text


def load_contract(path: Path) -> DataContract:
    if not path.is_file():
        raise PipelineError(f"{path} does not exist: run the validate stage (uv run dvc repro).")
    try:
        return DataContract.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ValidationError) as error:
        raise PipelineError(f"{path} is not a valid data contract: {error}") from None


def known_categories(contract: DataContract) -> dict[str, list[str] | None]:
    """Per categorical feature, the values it is known to take (None: open-ended, too many to
    list). Validation reports values outside these lists; serving reads the same lists."""
    return {
        name: rule.categories
        for name, rule in contract.features.items()
        if rule.kind == "categorical"
    }


# --------------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------------
def _rounded(value: float, *, up: bool) -> float:
    """A bound rounded outward to 6 significant digits, so the YAML stays readable."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    bound = float(f"{value:.6g}")
    if (bound < value) if up else (bound > value):
        unit = 10.0 ** (math.floor(math.log10(abs(value))) - 5)
        bound = float(f"{bound + (unit if up else -unit):.6g}")
    return bound


def inferred_bounds(low: float, high: float, margin: float) -> tuple[float, float]:
    """The observed range widened on each side by `margin` x the larger of the span and the
    bound's own size; never below 0 for a column that was never negative.

    Widening by the span alone makes narrow columns brittle (years 2007-2009 would allow
    only up to 2010); widening by the value's size as well keeps next year's rows valid while
    still catching unit and sign mistakes (x1000, a -999 code in a positive column).
    """
    span = high - low
    lower = low - margin * max(span, abs(low))
    upper = high + margin * max(span, abs(high))
    if low >= 0:
        lower = max(lower, 0.0)  # a column that was never negative stays non-negative
    return _rounded(lower, up=False) - 0.0, _rounded(upper, up=True)


def infer_column(
    series: pd.Series,
    *,
    is_target: bool,
    task: str,
    margin: float,
    role: Role = "feature",
    max_categories: int = 100,
) -> ColumnRule:
    numeric = is_numeric_series(series)
    kind: Kind = "numeric" if numeric else "categorical"
    if is_target:
        if task == "regression":
            return ColumnRule(kind="numeric", nullable=False)
        classes = sorted(series.dropna().unique().tolist())
        if len(classes) > MAX_INFERRED_CLASSES:
            raise PipelineError(
                f"target {series.name!r} has {len(classes)} distinct values: too many for "
                "classification. Is task in params.yaml right?"
            )
        return ColumnRule(kind=kind, nullable=False, allowed=classes)
    if role == "split":
        return ColumnRule(kind=kind, role="split", nullable=False)
    if not numeric:
        counts = as_text(series).value_counts(dropna=True)
        categories = sorted(counts.index.tolist()) if len(counts) <= max_categories else None
        if categories is not None and date_sample(series) is not None:
            categories = None  # dates: every later batch brings new ones (validate warns)
        return ColumnRule(kind="categorical", categories=categories)
    finite = series[np.isfinite(series.to_numpy(dtype="float64", na_value=np.nan))]
    if finite.empty:
        return ColumnRule(kind="numeric")
    low, high = inferred_bounds(float(finite.min()), float(finite.max()), margin)
    return ColumnRule(kind="numeric", min=low, max=high)


def _infer(frame: pd.DataFrame, name: str, params: Params) -> ColumnRule:
    return infer_column(
        frame[name],
        is_target=name == params.data.target,
        task=params.task,
        margin=params.validate_.range_margin,
        role="split" if name in params.split.columns else "feature",
        max_categories=params.validate_.max_categories,
    )


def infer_contract(
    frame: pd.DataFrame,
    *,
    source: str,
    target: str,
    task: str,
    margin: float,
    split_columns: tuple[str, ...] = (),
    max_categories: int = 100,
    settings: ContractSettings | None = None,
) -> DataContract:
    if target not in frame.columns:
        raise PipelineError(
            f"target column {target!r} (data.target in params.yaml) is missing from the data; "
            f"columns are: {', '.join(map(str, frame.columns))}."
        )
    columns = {
        str(name): infer_column(
            frame[name],
            is_target=name == target,
            task=task,
            margin=margin,
            role="split" if name in split_columns else "feature",
            max_categories=max_categories,
        )
        for name in frame.columns
    }
    return DataContract(
        source=source,
        target=target,
        min_rows=max(1, min(MIN_ROWS, len(frame))),
        settings=settings or ContractSettings(),
        columns=columns,
    )


def contract_from_params(params: Params, frame: pd.DataFrame) -> DataContract:
    return infer_contract(
        frame,
        source=params.data.source,
        target=params.data.target,
        task=params.task,
        margin=params.validate_.range_margin,
        split_columns=tuple(params.split.columns),
        max_categories=params.validate_.max_categories,
        settings=ContractSettings.of(params.data),
    )


# --------------------------------------------------------------------------------------------
# Following params.yaml
# --------------------------------------------------------------------------------------------
def _fits(rule: ColumnRule, series: pd.Series) -> bool:
    """Whether a column as now read still meets its rule (kind aside)."""
    if rule.kind == "numeric":
        values = series.dropna()
        return bool(
            (rule.min is None or (values >= rule.min).all())
            and (rule.max is None or (values <= rule.max).all())
        )
    if rule.categories is None:
        return True
    return bool(as_text(series).dropna().isin(rule.categories).all())


def _kind_of(series: pd.Series) -> Kind:
    return "numeric" if is_numeric_series(series) else "categorical"


def follow_settings(
    contract: DataContract, frame: pd.DataFrame, params: Params
) -> tuple[DataContract, list[str]]:
    """The contract updated to params.yaml's current data and split settings, and one line
    per column that changed (empty when nothing did).

    Only columns a settings change explains are touched: a column newly dropped is removed, a
    column whose kind a setting changed is inferred again from this batch, a column read
    differently (separator, decimal or thousands mark) is inferred again when its kind changed
    or its values no longer fit. Every other rule, hand edits included, is kept; a column that
    no setting explains is left for validation to judge.
    """
    data = params.data
    old, new = contract.settings, ContractSettings.of(data)
    reread = [f"data.{key}" for key, value in new.reading().items() if old.reading()[key] != value]
    toggled = {
        "data.categorical": set(old.categorical) ^ set(new.categorical),
        "data.numeric": set(old.numeric) ^ set(new.numeric),
        "data.drop": set(old.drop) - set(new.drop),
    }
    columns = dict(contract.columns)
    changes: list[str] = []

    for name in data.drop:
        if name in columns:
            del columns[name]
            changes.append(f"{name!r}: removed (data.drop)")
    for name in map(str, frame.columns):
        rule = columns.get(name)
        kind = _kind_of(frame[name])
        reasons = [key for key, names in toggled.items() if name in names]
        if name in data.categorical and rule is not None and rule.kind != "categorical":
            reasons.append("data.categorical")
        if name in data.numeric and rule is not None and rule.kind != "numeric":
            reasons.append("data.numeric")
        if rule is None and name in params.split.columns:
            reasons.append("split")
        reasons += reread
        if not reasons:
            continue
        why = ", ".join(dict.fromkeys(reasons))
        if rule is None:
            columns[name] = _infer(frame, name, params)
            changes.append(f"{name!r}: added as {columns[name].kind} ({why})")
        elif rule.kind != kind:
            columns[name] = _infer(frame, name, params)
            changes.append(f"{name!r}: {rule.kind} -> {kind}, rules inferred again ({why})")
        elif reread and not _fits(rule, frame[name]):
            columns[name] = _infer(frame, name, params)
            changes.append(f"{name!r}: values read differently, rules inferred again ({why})")
    if reread:
        for name in [name for name in columns if name not in frame.columns]:
            del columns[name]
            changes.append(f"{name!r}: removed, not in the data as now read ({', '.join(reread)})")
    for name, rule in list(columns.items()):
        role: Role = "split" if name in params.split.columns else "feature"
        if name != contract.target and rule.role != role and name in frame.columns:
            columns[name] = _infer(frame, name, params)
            if role == "split":
                changes.append(f"{name!r}: now read by the split, no longer a feature (split)")
            else:
                changes.append(f"{name!r}: a feature again (no longer named in split)")
    order = [name for name in map(str, frame.columns) if name in columns]
    order += [name for name in columns if name not in order]
    updated = contract.model_copy(
        update={"settings": new, "columns": {name: columns[name] for name in order}}
    )
    return updated, changes


@dataclass(frozen=True)
class ContractState:
    """The contract a batch is checked against, and how it came about."""

    contract: DataContract
    inferred_because: str | None = None  # None: read from schema.yaml
    changes: tuple[str, ...] = ()  # what following params.yaml changed, one line each
    # The columns whose rules were inferred from this batch (all of them for a new contract):
    # no person has looked at them yet, so validation asks about what inference cannot decide.
    inferred: tuple[str, ...] = ()

    @property
    def to_write(self) -> bool:
        return self.inferred_because is not None or bool(self.changes)


def _settings_changes(old: ContractSettings, new: ContractSettings) -> list[str]:
    return [
        f"settings: data.{key} {before!r} -> {after!r}"
        for key, before in old.model_dump().items()
        if before != (after := getattr(new, key))
    ]


def contract_for(params: Params, frame: pd.DataFrame) -> ContractState:
    """The committed contract brought in line with params.yaml, or a fresh one (and why) when
    there is none or the source or target changed."""
    path = params.paths.schema_file
    if path.is_file():
        contract = load_contract(path)
        if (contract.source, contract.target) == (params.data.source, params.data.target):
            updated, changes = follow_settings(contract, frame, params)
            changes += _settings_changes(contract.settings, updated.settings)
            inferred = [
                name for name, rule in updated.columns.items() if contract.columns.get(name) != rule
            ]
            return ContractState(updated, None, tuple(changes), tuple(inferred))
        reason = (
            f"data.source/target changed from {contract.source}/{contract.target} to "
            f"{params.data.source}/{params.data.target}"
        )
    else:
        reason = f"{path} did not exist"
    fresh = contract_from_params(params, frame)
    return ContractState(fresh, reason, inferred=tuple(fresh.columns))


# --------------------------------------------------------------------------------------------
# The pandera schema
# --------------------------------------------------------------------------------------------
def to_pandera(contract: DataContract, columns: list[str] | None = None) -> Any:
    """The pandera schema that enforces the contract (pandera imported only when checking).

    `columns` limits it to the columns present in the batch: a missing column is reported
    separately, with its fix, instead of as pandera's column_in_dataframe failure.
    """
    import pandera.pandas as pa

    checked = {}
    for name, rule in contract.columns.items():
        if columns is not None and name not in columns:
            continue
        checks = []
        if rule.min is not None:
            checks.append(pa.Check.ge(rule.min))
        if rule.max is not None:
            checks.append(pa.Check.le(rule.max))
        if rule.allowed is not None:
            checks.append(pa.Check.isin(rule.allowed))
        checked[name] = pa.Column(
            "float64" if rule.kind == "numeric" else None,
            checks=checks,
            nullable=rule.nullable,
            coerce=rule.kind == "numeric",
            required=True,
        )
    return pa.DataFrameSchema(
        checked,
        checks=[
            pa.Check(
                lambda frame: len(frame) >= contract.min_rows,
                element_wise=False,
                name=f"at least {contract.min_rows} rows",
            )
        ],
        strict=False,
    )
