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

Bounds come in two kinds. `observed` is the range of values a numeric feature had in the
training data: a fact, not a rule. Values outside it are counted and warned (validate), counted
(the service) and measured by `drift`; they are never refused, so a retrain on data that grew
goes through. Each batch that passes validation widens it to cover the batch. `min`/`max` are
hard bounds a person declared (validate.bounds in params.yaml, copied here; or written here by
hand): a value outside stops validation, and `predict` and the service refuse it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from {{ cookiecutter.package_name }}.core.config import (
    DataParams,
    DeclaredBound,
    Params,
    bound_problem,
)
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.source import (
    as_text,
    date_sample,
    is_numeric_series,
)

Kind = Literal["numeric", "categorical"]
Role = Literal["feature", "split"]
MIN_ROWS = 20
MAX_INFERRED_CLASSES = 50

HEADER = """\
# Data contract, checked on every batch by the validate stage (see docs/data.md).
# Inferred from the first batch of `source`; edit the rules and commit.
# Per column: kind (numeric | categorical), nullable, observed (numeric: the range seen in the
# training data; values outside it are warned, not refused), min/max (numeric: hard bounds,
# declared in params.yaml validate.bounds), allowed (the only values accepted), categories (the
# values a categorical feature had: new ones are reported, see validate.unseen_categories;
# absent for a column of dates or with more than validate.max_categories values),
# role: split (a column the split reads, never a feature).
# `settings` are the params.yaml data settings this contract follows: change them in params.yaml
# and the next `dvc repro` updates the affected columns here (and prints what changed).
"""


class Observed(BaseModel):
    """The range of values a numeric feature had in the training data (soft: never refused)."""

    model_config = ConfigDict(extra="forbid")

    min: float
    max: float

    @model_validator(mode="after")
    def _a_range(self) -> Observed:
        if not (math.isfinite(self.min) and math.isfinite(self.max)):
            raise ValueError("observed min and max must be finite numbers")
        if self.min > self.max:
            raise ValueError(f"observed min {self.min} is greater than observed max {self.max}")
        return self

    def covering(self, low: float, high: float) -> Observed:
        """This range widened to include [low, high] (rounded outward)."""
        return Observed(
            min=min(self.min, _rounded(low, up=False)), max=max(self.max, _rounded(high, up=True))
        )


class ColumnRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind
    role: Role = "feature"
    nullable: bool = True
    observed: Observed | None = None
    min: float | None = None  # declared (hard) bounds
    max: float | None = None
    allowed: list[str | int | float | bool] | None = None
    categories: list[str] | None = None

    @model_validator(mode="after")
    def _bounds_fit_kind(self) -> ColumnRule:
        if self.kind == "categorical" and (
            self.min is not None or self.max is not None or self.observed is not None
        ):
            raise ValueError("min/max and observed apply to numeric columns only")
        if self.kind == "numeric" and self.categories is not None:
            raise ValueError("categories apply to categorical columns only")
        problem = bound_problem(self.min, self.max)
        if problem:
            raise ValueError(problem)
        return self

    def allowed_values(self) -> list[float] | list[str] | None:
        """`allowed` as the values a checked column holds: numbers for a numeric column, text
        for a categorical one (as the model reads it). The request model and the pandera
        schema both read it from here."""
        if self.allowed is None:
            return None
        if self.kind == "numeric":
            return [float(value) for value in self.allowed]
        return [str(value) for value in self.allowed]

    @property
    def known_categories(self) -> list[str] | None:
        """The categories a categorical feature takes without being "unseen" (None: no list, as
        for an open-ended column, or `allowed` decides instead)."""
        if self.kind != "categorical" or self.allowed is not None:
            return None
        return self.categories

    def outside(self, numbers: pd.Series) -> pd.Series:
        """Which values (float64, NaN for missing) lie outside the observed range."""
        if self.observed is None:
            return pd.Series(False, index=numbers.index)
        return (numbers < self.observed.min) | (numbers > self.observed.max)

    def declared(self, bound: DeclaredBound | None) -> ColumnRule:
        """This rule with the declared bounds of validate.bounds (None: none)."""
        return self.model_copy(
            update={"min": bound.min if bound else None, "max": bound.max if bound else None}
        )


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
    # validate.bounds: the declared (hard) bounds, copied into the columns' min/max.
    bounds: dict[str, DeclaredBound] = {}

    @classmethod
    def of(
        cls, data: DataParams, bounds: dict[str, DeclaredBound] | None = None
    ) -> ContractSettings:
        fields = set(cls.model_fields) - {"bounds"}
        return cls(**data.model_dump(include=fields), bounds=bounds or {})

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
        for name, rule in body["columns"].items():
            if rule.get("role") == "feature":
                del rule["role"]
            if not any(isinstance(value, list) for value in rule.values()):
                body["columns"][name] = _OneLine(rule)
        # One line per column where it fits (flow style for rules of plain values).
        text = yaml.dump(
            body,
            Dumper=_Dumper,
            sort_keys=False,
            allow_unicode=True,
            default_flow_style=None,
            width=100,
        )
        return HEADER + text


class _OneLine(dict):
    """A column rule written on one line, its observed range included."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _OneLine, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, True)
)


def _upgraded(body: Any) -> tuple[Any, list[str]]:
    """A contract written before observed ranges existed (its settings have no `bounds`): its
    numeric features' min/max were inferred from the first batch, so they become the observed
    range (soft) instead of hard bounds. Returns the body and the columns upgraded."""
    if not isinstance(body, dict) or not isinstance(body.get("columns"), dict):
        return body, []
    settings = body.get("settings")
    if isinstance(settings, dict) and "bounds" in settings:
        return body, []
    body = {**body, "settings": {**(settings or {}), "bounds": {}}}
    upgraded = []
    for name, rule in body["columns"].items():
        if (
            isinstance(rule, dict)
            and rule.get("kind") == "numeric"
            and rule.get("role", "feature") == "feature"
            and name != body.get("target")
            and "observed" not in rule
            and rule.get("min") is not None
            and rule.get("max") is not None
        ):
            rule = {**rule, "observed": {"min": rule["min"], "max": rule["max"]}}
            del rule["min"], rule["max"]
            body["columns"][name] = rule
            upgraded.append(str(name))
    return body, upgraded


def read_contract(path: Path) -> tuple[DataContract, list[str]]:
    """The contract in `path`, and the columns whose bounds an older format's upgrade turned
    into observed ranges (see `_upgraded`)."""
    if not path.is_file():
        raise PipelineError(f"{path} does not exist: run the validate stage (uv run dvc repro).")
    try:
        body, upgraded = _upgraded(yaml.safe_load(path.read_text(encoding="utf-8")))
        return DataContract.model_validate(body), upgraded
    except (yaml.YAMLError, ValidationError) as error:
        raise PipelineError(
            f"{path} is not a valid data contract: {error}\nTo start afresh, delete {path} and "
            "run `uv run dvc repro` (the contract is inferred again from the data)."
        ) from None


def load_contract(path: Path) -> DataContract:
    return read_contract(path)[0]


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


def finite_range(series: pd.Series) -> tuple[float, float] | None:
    """The smallest and largest finite number of a column (None: it has none)."""
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    finite = numbers[np.isfinite(numbers)]
    return (float(finite.min()), float(finite.max())) if finite.size else None


def observed_range(series: pd.Series) -> Observed | None:
    """The range a numeric column was seen to take, rounded outward to 6 significant digits."""
    found = finite_range(series)
    if found is None:
        return None
    return Observed(min=_rounded(found[0], up=False) + 0.0, max=_rounded(found[1], up=True))


def infer_column(
    series: pd.Series,
    *,
    is_target: bool,
    task: str,
    role: Role = "feature",
    max_categories: int = 100,
    bound: DeclaredBound | None = None,
) -> ColumnRule:
    rule = _inferred_rule(
        series, is_target=is_target, task=task, role=role, max_categories=max_categories
    )
    return rule.declared(bound) if bound is not None and rule.kind == "numeric" else rule


def _inferred_rule(
    series: pd.Series, *, is_target: bool, task: str, role: Role, max_categories: int
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
    return ColumnRule(kind="numeric", observed=observed_range(series))


def _infer(frame: pd.DataFrame, name: str, params: Params) -> ColumnRule:
    return infer_column(
        frame[name],
        is_target=name == params.data.target,
        task=params.task,
        role="split" if name in params.split.columns else "feature",
        max_categories=params.validate_.max_categories,
        bound=params.validate_.bounds.get(name),
    )


def infer_contract(
    frame: pd.DataFrame,
    *,
    source: str,
    target: str,
    task: str,
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
            role="split" if name in split_columns else "feature",
            max_categories=max_categories,
            bound=(settings.bounds if settings else {}).get(str(name)),
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
        split_columns=tuple(params.split.columns),
        max_categories=params.validate_.max_categories,
        settings=ContractSettings.of(params.data, params.validate_.bounds),
    )


# --------------------------------------------------------------------------------------------
# Following params.yaml
# --------------------------------------------------------------------------------------------
def _fits(rule: ColumnRule, series: pd.Series) -> bool:
    """Whether a column as now read still meets its rule (kind aside)."""
    if rule.kind == "numeric":
        values = pd.to_numeric(series, errors="coerce").dropna()
        return bool(
            (rule.min is None or (values >= rule.min).all())
            and (rule.max is None or (values <= rule.max).all())
            and not rule.outside(values).any()
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
    old, new = contract.settings, ContractSettings.of(data, params.validate_.bounds)
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
    for name in sorted(set(old.bounds) | set(new.bounds)):
        bound, rule = new.bounds.get(name), columns.get(name)
        if rule is None or rule.kind != "numeric":
            continue  # refused by bound_problems
        if old.bounds.get(name) != bound and (rule.min, rule.max) != (
            (bound.min, bound.max) if bound else (None, None)
        ):
            columns[name] = rule.declared(bound)
            given = bound.model_dump() if bound else {}
            said = [f"{key} {value:g}" for key, value in given.items() if value is not None]
            changes.append(
                f"{name!r}: declared bounds {', '.join(said) or 'removed'} (validate.bounds)"
            )
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
        for key, before in old.model_dump(exclude={"bounds"}).items()
        if before != (after := getattr(new, key))
    ]


def contract_for(params: Params, frame: pd.DataFrame) -> ContractState:
    """The committed contract brought in line with params.yaml, or a fresh one (and why) when
    there is none or the source or target changed."""
    path = params.paths.schema_file
    if path.is_file():
        contract, upgraded = read_contract(path)
        if (contract.source, contract.target) == (params.data.source, params.data.target):
            updated, changes = follow_settings(contract, frame, params)
            bound_problems(updated, params)
            if upgraded:
                changes.insert(
                    0,
                    f"min/max of {len(upgraded)} numeric column(s) ({', '.join(upgraded[:5])}"
                    f"{', ...' if len(upgraded) > 5 else ''}), inferred by an older template, "
                    "are now their observed range: values outside are warned, no longer "
                    "refused; declare hard bounds in params.yaml validate.bounds",
                )
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
    bound_problems(fresh, params)
    return ContractState(fresh, reason, inferred=tuple(fresh.columns))


def bound_problems(contract: DataContract, params: Params) -> None:
    """validate.bounds may name only numeric columns of the contract."""
    wrong = [
        name
        for name in params.validate_.bounds
        if name not in contract.columns or contract.columns[name].kind != "numeric"
    ]
    if wrong:
        numeric = [name for name, rule in contract.columns.items() if rule.kind == "numeric"]
        raise PipelineError(
            f"validate.bounds in params.yaml names {', '.join(map(repr, wrong))}, not a numeric "
            f"column of the data; numeric columns are: {', '.join(numeric) or 'none'}. Fix the "
            "name, or remove its entry."
        )


def widen_observed(contract: DataContract, frame: pd.DataFrame) -> tuple[DataContract, list[str]]:
    """The contract with each numeric feature's observed range widened to cover this batch (a
    batch that passed validation is training data), and the columns that widened."""
    columns = dict(contract.columns)
    widened = []
    for name, rule in contract.features.items():
        if rule.kind != "numeric" or name not in frame.columns:
            continue
        found = finite_range(frame[name])
        if found is None:
            continue
        observed = rule.observed.covering(*found) if rule.observed else observed_range(frame[name])
        if observed != rule.observed:
            columns[name] = rule.model_copy(update={"observed": observed})
            widened.append(name)
    return contract.model_copy(update={"columns": columns}), widened


# --------------------------------------------------------------------------------------------
# The pandera schema
# --------------------------------------------------------------------------------------------
KNOWN_CATEGORY_CHECK = "known_category"


def to_pandera(
    contract: DataContract,
    columns: list[str] | None = None,
    *,
    categories: bool = False,
    min_rows: bool = True,
) -> Any:
    """The pandera schema that enforces the contract (pandera imported only when checking):
    the one engine every frame is checked with (validate, `predict`, drift).

    `columns` limits it to the columns present in the batch: a missing column is reported
    separately, with its fix, instead of as pandera's column_in_dataframe failure.
    `categories`: also check each categorical feature's values against its known categories
    (check `known_category`; serving decides with validate.unseen_categories whether such a
    value is refused or counted). `min_rows`: the batch must have the contract's min_rows
    (a training batch does; a file to score need not).

    Numeric columns are float64 (coerced: text that is not a number fails `coerce_dtype`, so
    callers that report it better parse numbers first) and finite; categorical values are
    compared as text, as the model reads them.
    """
    import pandera.pandas as pa

    checked = {}
    for name, rule in contract.columns.items():
        if columns is not None and name not in columns:
            continue
        checks = []
        allowed = rule.allowed_values()
        if rule.kind == "numeric":
            checks.append(pa.Check(_finite, name="finite", error="finite"))
            if rule.min is not None:
                checks.append(pa.Check.ge(rule.min))
            if rule.max is not None:
                checks.append(pa.Check.le(rule.max))
            if rule.allowed is not None:
                checks.append(pa.Check.isin(rule.allowed))
        elif allowed is not None:
            checks.append(_text_check(pa, allowed, f"isin({allowed})"))
        known = rule.known_categories
        if categories and known is not None and name in contract.features:
            checks.append(_text_check(pa, known, KNOWN_CATEGORY_CHECK))
        checked[name] = pa.Column(
            "float64" if rule.kind == "numeric" else None,
            checks=checks,
            nullable=rule.nullable,
            coerce=rule.kind == "numeric",
            required=True,
        )
    frame_checks = []
    if min_rows:
        frame_checks.append(
            pa.Check(
                lambda frame: len(frame) >= contract.min_rows,
                element_wise=False,
                name=f"at least {contract.min_rows} rows",
            )
        )
    return pa.DataFrameSchema(checked, checks=frame_checks, strict=False)


def _finite(values: pd.Series) -> pd.Series:
    return pd.Series(np.isfinite(values.to_numpy(dtype="float64")), index=values.index)


def _text_check(pa: Any, values: Sequence[str | float], name: str) -> Any:
    """A check that a column's values, as text (`as_text`), are among `values` (as text)."""
    accepted = frozenset(str(value) for value in values)
    return pa.Check(
        lambda series: as_text(series).isin(accepted).astype(bool), name=name, error=name
    )
