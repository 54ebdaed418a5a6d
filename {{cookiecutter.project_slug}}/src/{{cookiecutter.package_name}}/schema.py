"""The data contract: which columns a batch has, of what kind, within which bounds.

The contract is inferred from the first batch of a source, written to schema.yaml for people to
read, edit and commit, and then every batch is checked against it with pandera. The same
contract tells features.py which columns are numeric or categorical, so training and serving
read column types from one place.

The file format is our own rather than pandera's YAML because the contract records what pandera
drops (the source it was inferred from, the target, each column's role); `to_pandera` builds
the pandera schema that does the checking.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from {{ cookiecutter.package_name }}.config import Params
from {{ cookiecutter.package_name }}.errors import PipelineError
from {{ cookiecutter.package_name }}.files import read_frame, write_json, write_text

Kind = Literal["numeric", "categorical"]
MIN_ROWS = 20
MAX_INFERRED_CLASSES = 50

HEADER = """\
# Data contract, checked on every batch by the validate stage (see README, "Data validation").
# Inferred from the first batch of `source`; edit the rules and commit.
# Per column: kind (numeric | categorical), nullable, min/max (numeric), allowed (values).
# Changing data.source in params.yaml infers a fresh contract for the new source.
"""


class ColumnRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: list[str | int | float | bool] | None = None

    @model_validator(mode="after")
    def _bounds_fit_kind(self) -> ColumnRule:
        if self.kind == "categorical" and (self.min is not None or self.max is not None):
            raise ValueError("min/max apply to numeric columns only")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class DataContract(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    target: str
    min_rows: int = Field(MIN_ROWS, ge=1)
    columns: dict[str, ColumnRule]

    @model_validator(mode="after")
    def _target_is_a_column(self) -> DataContract:
        if self.target not in self.columns:
            raise ValueError(f"target {self.target!r} is not among the columns")
        return self

    @property
    def features(self) -> dict[str, ColumnRule]:
        return {name: rule for name, rule in self.columns.items() if name != self.target}

    def to_yaml(self) -> str:
        body = self.model_dump(mode="json", exclude_none=True)
        return HEADER + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)


def load_contract(path: Path) -> DataContract:
    if not path.is_file():
        raise PipelineError(f"{path} does not exist: run the validate stage (uv run dvc repro).")
    try:
        return DataContract.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ValidationError) as error:
        raise PipelineError(f"{path} is not a valid data contract: {error}") from None


def _rounded(value: float, *, up: bool) -> float:
    """Bounds rounded outward to 6 significant digits, so the YAML stays readable."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    scale = 10.0 ** (5 - math.floor(math.log10(abs(value))))
    bound = (math.ceil if up else math.floor)(value * scale) / scale
    return max(bound, value) if up else min(bound, value)


def infer_column(series: pd.Series, *, is_target: bool, task: str, margin: float) -> ColumnRule:
    numeric = pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
        series.dtype
    )
    if is_target:
        if task == "regression":
            return ColumnRule(kind="numeric", nullable=False)
        classes = sorted(series.dropna().unique().tolist())
        if len(classes) > MAX_INFERRED_CLASSES:
            raise PipelineError(
                f"target {series.name!r} has {len(classes)} distinct values: too many for "
                "classification. Is task in params.yaml right?"
            )
        return ColumnRule(
            kind="numeric" if numeric else "categorical", nullable=False, allowed=classes
        )
    if not numeric:
        return ColumnRule(kind="categorical")
    observed = series.dropna()
    if observed.empty:
        return ColumnRule(kind="numeric")
    low, high = float(observed.min()), float(observed.max())
    span = (high - low) or abs(high) or 1.0
    lower = low - margin * span
    if low >= 0:
        lower = max(lower, 0.0)  # a column that was never negative stays non-negative
    return ColumnRule(
        kind="numeric",
        min=_rounded(lower, up=False) - 0.0,
        max=_rounded(high + margin * span, up=True),
    )


def infer_contract(
    frame: pd.DataFrame, *, source: str, target: str, task: str, margin: float
) -> DataContract:
    if target not in frame.columns:
        raise PipelineError(
            f"target column {target!r} (data.target in params.yaml) is missing from the data; "
            f"columns are: {', '.join(map(str, frame.columns))}."
        )
    columns = {
        str(name): infer_column(frame[name], is_target=name == target, task=task, margin=margin)
        for name in frame.columns
    }
    return DataContract(
        source=source, target=target, min_rows=min(MIN_ROWS, len(frame)), columns=columns
    )


def to_pandera(contract: DataContract) -> Any:
    """The pandera schema that enforces the contract (pandera imported only when checking)."""
    import pandera.pandas as pa

    columns = {}
    for name, rule in contract.columns.items():
        checks = []
        if rule.min is not None:
            checks.append(pa.Check.ge(rule.min))
        if rule.max is not None:
            checks.append(pa.Check.le(rule.max))
        if rule.allowed is not None:
            checks.append(pa.Check.isin(rule.allowed))
        columns[name] = pa.Column(
            "float64" if rule.kind == "numeric" else None,
            checks=checks,
            nullable=rule.nullable,
            coerce=rule.kind == "numeric",
            required=True,
        )
    return pa.DataFrameSchema(
        columns,
        checks=[
            pa.Check(
                lambda frame: len(frame) >= contract.min_rows,
                element_wise=False,
                name=f"at least {contract.min_rows} rows",
            )
        ],
        strict=False,
    )


def _describe_failures(failures: pd.DataFrame, max_examples: int) -> list[str]:
    """One line per (column, rule), naming a few offending rows and values."""
    lines = []
    failures = failures.assign(column=failures["column"].fillna("<table>"))
    for (column, check), group in failures.groupby(["column", "check"], sort=False, dropna=False):
        examples = [
            f"row {int(index)}: {value!r}" if pd.notna(index) else f"{value!r}"
            for index, value in zip(
                group["index"].head(max_examples),
                group["failure_case"].head(max_examples),
                strict=True,
            )
        ]
        count = len(group)
        lines.append(
            f"  - column {column!r}: rule {check} failed {count} time{'s' * (count != 1)}"
            + (f"; e.g. {', '.join(examples)}" if examples else "")
        )
    return lines


def validate_frame(frame: pd.DataFrame, contract: DataContract, max_examples: int) -> None:
    """Raise PipelineError naming every broken rule, with examples; return when all hold."""
    import pandera.errors

    if frame.empty:
        raise PipelineError("the batch is empty: it has no rows (rule: at least 1 row).")
    try:
        to_pandera(contract).validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as error:
        lines = _describe_failures(error.failure_cases, max_examples)
        raise PipelineError(
            f"data validation failed ({len(lines)} rule{'s' * (len(lines) != 1)} broken):\n"
            + "\n".join(lines)
            + "\nNothing after validation ran, so earlier models and metrics are unchanged. "
            "Fix the data, or edit schema.yaml if a rule is wrong."
        ) from None


def missing_counts(frame: pd.DataFrame) -> dict[str, int]:
    counts = frame.isna().sum()
    return {str(name): int(count) for name, count in counts.items() if count}


def contract_for(params: Params, frame: pd.DataFrame) -> tuple[DataContract, str | None]:
    """The committed contract, or a fresh one (and why) when the source or target changed."""
    path = params.paths.schema_file
    if path.is_file():
        contract = load_contract(path)
        if (contract.source, contract.target) == (params.data.source, params.data.target):
            return contract, None
        reason = (
            f"data.source/target changed from {contract.source}/{contract.target} to "
            f"{params.data.source}/{params.data.target}"
        )
    else:
        reason = f"{path} did not exist"
    contract = infer_contract(
        frame,
        source=params.data.source,
        target=params.data.target,
        task=params.task,
        margin=params.validate_.range_margin,
    )
    return contract, reason


def run_validate(params: Params) -> dict[str, Any]:
    """Stage `validate`: check paths.raw against schema.yaml (inferring it for a new source).

    A freshly inferred contract is written only once the batch has passed it, so a bad first
    batch never becomes the rule.
    """
    frame = read_frame(params.paths.raw)
    contract, inferred_because = contract_for(params, frame)
    validate_frame(frame, contract, params.validate_.max_examples)
    if inferred_because:
        write_text(contract.to_yaml(), params.paths.schema_file)
    report = {
        "status": "passed",
        "rows": len(frame),
        "columns": frame.shape[1],
        "schema": str(params.paths.schema_file),
        "schema_inferred": inferred_because,
        "missing_values": missing_counts(frame),
    }
    write_json(report, params.paths.validation_report)
    return report
