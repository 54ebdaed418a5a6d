"""Typed access to params.yaml: the only module that reads it.

Every knob lives in params.yaml so that DVC can track it; this module turns that file into
validated settings, so a typo or an out-of-range value stops the pipeline with the key's name
instead of surfacing later as a confusing failure.
"""

from __future__ import annotations

import codecs
import math
import os
import posixpath
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from {{ cookiecutter.package_name }}.core.errors import PipelineError

PARAMS_FILE = Path("params.yaml")
BUILTIN_PREFIX = "sklearn:"
BUILTIN_DATASETS = ("breast_cancer", "digits", "wine", "iris", "diabetes")
EXTERNAL_DATA_DIR = Path("data/external")

Task = Literal["binary_classification", "multiclass", "regression"]


class _Section(BaseModel):
    """Base for every section: unknown keys are errors, so typos cannot pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Section):
    source: str
    format: Literal["auto", "csv", "parquet"] = "auto"
    csv_separator: str = Field(",", min_length=1, max_length=1)
    csv_decimal: str = Field(".", min_length=1, max_length=1)
    csv_thousands: str | None = Field(None, min_length=1, max_length=1)
    # The CSV file's text encoding (any Python codec name: utf-8, latin-1, cp1252, ...).
    encoding: str = Field("utf-8", min_length=1)
    target: str
    missing_target: Literal["drop", "error"] = "drop"
    categorical: list[str] = []
    numeric: list[str] = []
    drop: list[str] = []
    # Binary classification: the label that counts as positive (ROC AUC, F1, P(positive)).
    positive_class: str | int | float | bool | None = None

    @field_validator("source")
    @classmethod
    def _known_source(cls, source: str) -> str:
        if source.startswith(BUILTIN_PREFIX):
            name = source.removeprefix(BUILTIN_PREFIX)
            if name not in BUILTIN_DATASETS:
                raise ValueError(
                    f"unknown bundled dataset {name!r}; choose one of {', '.join(BUILTIN_DATASETS)}"
                )
            return source
        # `..` is resolved first: data/external/../x.csv is x.csv, which DVC does not watch.
        path = Path(posixpath.normpath(source))
        if Path(source).is_absolute() or EXTERNAL_DATA_DIR not in path.parents:
            raise ValueError(
                f"{source!r} is not under {EXTERNAL_DATA_DIR}/ (the ingest stage depends on "
                "that directory, so DVC would not see the file change): copy the file into "
                f"{EXTERNAL_DATA_DIR}/, give its path from the project root (e.g. "
                f"{EXTERNAL_DATA_DIR}/{path.name}, no '..') and track it with `uv run dvc add "
                f"{EXTERNAL_DATA_DIR}/{path.name}` or git"
            )
        return source

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(
                f"unknown text encoding {encoding!r}; use a Python codec name such as utf-8, "
                "latin-1 or cp1252"
            ) from None
        return encoding

    @model_validator(mode="after")
    def _consistent(self) -> DataParams:
        if self.csv_thousands is not None and self.csv_thousands == self.csv_decimal:
            raise ValueError(
                f"csv_thousands and csv_decimal are both {self.csv_decimal!r}; a number "
                "like 1.234,56 has csv_thousands '.' and csv_decimal ','"
            )
        both = sorted(set(self.categorical) & set(self.numeric))
        if both:
            raise ValueError(f"columns listed as both categorical and numeric: {', '.join(both)}")
        if self.target in self.drop:
            raise ValueError(f"the target {self.target!r} is listed in drop")
        return self

    @property
    def is_builtin(self) -> bool:
        return self.source.startswith(BUILTIN_PREFIX)


def bound_problem(low: float | None, high: float | None) -> str | None:
    """What is wrong with a pair of numeric bounds (one not finite, min above max), or None:
    the one rule for a bound declared in params.yaml and one held by schema.yaml."""
    for name, bound in (("min", low), ("max", high)):
        if bound is not None and not math.isfinite(bound):
            return f"{name} must be a finite number, not {bound}"
    if low is not None and high is not None and low > high:
        return f"min {low} is greater than max {high}"
    return None


class DeclaredBound(_Section):
    """A hard bound of a numeric column (validate.bounds): a value outside stops validation,
    `predict` and the service refuse it."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _a_range(self) -> DeclaredBound:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        problem = bound_problem(self.min, self.max)
        if problem:
            raise ValueError(problem)
        return self


class ValidateParams(_Section):
    # Hard bounds per numeric column ({column: {min: ..., max: ...}}), copied into schema.yaml.
    bounds: dict[str, DeclaredBound] = {}
    max_examples: int = Field(5, ge=1)
    unseen_categories: Literal["warn", "error"] = "warn"
    max_categories: int = Field(100, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _no_range_margin(cls, data: Any) -> Any:
        if isinstance(data, dict) and "range_margin" in data:
            raise ValueError(
                "range_margin is gone: the observed range in schema.yaml is no longer a hard "
                "rule (docs/data.md); delete range_margin, and declare hard bounds in "
                "validate.bounds ({column: {min: ..., max: ...}})"
            )
        return data


SplitMethod = Literal["hash", "time", "group", "random"]


class SplitParams(_Section):
    method: SplitMethod = "hash"
    key: list[str] | None = None
    time_column: str | None = None
    group_column: str | None = None
    test_size: float = Field(gt=0, lt=1)
    seed: int
    stratify: bool = True

    @field_validator("key", mode="before")
    @classmethod
    def _key_as_list(cls, key: object) -> object:
        return [key] if isinstance(key, str) else key

    @model_validator(mode="after")
    def _columns_fit_the_method(self) -> SplitParams:
        needs = {"time": "time_column", "group": "group_column"}
        for method, field in needs.items():
            given = getattr(self, field) is not None
            if self.method == method and not given:
                raise ValueError(f"method {method} needs {field}: the column to split by")
            if self.method != method and given:
                raise ValueError(f"{field} is used only with method: {method}; set it to null")
        if self.key is not None and self.method != "hash":
            raise ValueError("key is used only with method: hash; set it to null")
        if self.key is not None and not self.key:
            raise ValueError("key is an empty list; set it to null to hash the row's contents")
        return self

    @property
    def columns(self) -> list[str]:
        """The columns the split reads besides the target: never used as features."""
        named = [*(self.key or []), self.time_column, self.group_column]
        return [column for column in named if column is not None]


class RoleSettings(BaseModel):
    """A role's model as params.yaml writes it: `kind` names an entry of the model catalogue
    (core/models.py), and the rest are that kind's settings. The kind's own settings class
    checks them when the stages that build models read them (`models.role_kinds`), so this
    module does not import the catalogue: editing a model kind then reruns only train onwards."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: str


class TrainParams(_Section):
    seed: int
    floor: RoleSettings
    baseline: RoleSettings
    candidate: RoleSettings

    def roles(self) -> dict[str, RoleSettings]:
        return {"floor": self.floor, "baseline": self.baseline, "candidate": self.candidate}


class EvaluateParams(_Section):
    primary_metric: str
    bootstrap_samples: int = Field(1000, ge=100)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    seed: int


class GateParams(BaseModel):
    """The gate section as params.yaml writes it: the two settings the comparisons read, and
    the settings of each check of the gate's catalogue (promotion/gate.py). A check declares
    its own settings class, which checks its keys when the gate reads them
    (`gate.check_settings`, naming an unknown key), so this module does not import the
    catalogue, and adding a check is one function there plus its key here in params.yaml."""

    model_config = ConfigDict(extra="allow", frozen=True)

    # Proposed minus its reference on the primary metric (floor, baseline: artifacts.COMPARISONS).
    min_improvement: float = 0.0
    # The fewest holdout rows: the sanity check's, and a champion comparison's unseen rows.
    min_holdout_rows: int = Field(30, ge=1)


class MlflowParams(_Section):
    experiment: str = Field(min_length=1)
    # Letters, digits, `.`, `_` and `-` only: the name goes into registry search filters.
    registered_model: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    tracking_uri: str | None = None
    # A server that accepts connections but never answers fails after about
    # request_timeout_seconds x (request_retries + 1) seconds, plus a short backoff.
    request_timeout_seconds: int = Field(10, ge=1)
    request_retries: int = Field(1, ge=0, le=5)

    def resolved_tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI wins; without it, the local store named in params.yaml."""
        uri = os.environ.get("MLFLOW_TRACKING_URI") or self.tracking_uri
        if not uri:
            raise PipelineError(
                "MLFLOW_TRACKING_URI is not set and params.yaml has no mlflow.tracking_uri: "
                "export the tracking server's URI (see README, Quickstart, and docs/github.md)."
            )
        return uri


class ServeParams(_Section):
    max_records: int = Field(1000, ge=1, le=100_000)
    batch_rows: int = Field(50_000, ge=100)
    workers: int = Field(2, ge=1, le=64)
    # Columns of a record or file that are not features: `known` accepts (and ignores) the
    # other columns of the data file the contract describes (the target, data.drop's, the
    # split's) and refuses any other; `ignore` ignores every other; `error` takes features only.
    extra_columns: Literal["known", "ignore", "error"] = "known"


class MonitorParams(_Section):
    p_value: float = Field(0.01, gt=0, lt=1)
    min_ks: float = Field(0.1, gt=0, le=1)
    psi: float = Field(0.2, gt=0)
    drift_share: float = Field(0.3, gt=0, le=1)
    top_importance: float = Field(0.8, gt=0, le=1)
    min_rows: int = Field(100, ge=1)
    max_missing_increase: float = Field(0.1, ge=0, le=1)
    max_broken_share: float = Field(0.01, ge=0, le=1)
    # A numeric feature drifts when this share of its values is outside the observed range.
    outside_range: float = Field(0.05, gt=0, le=1)


class Paths(_Section):
    raw: Path
    ingest_report: Path
    schema_file: Path = Field(alias="schema")
    validation_report: Path
    train: Path
    test: Path
    split_report: Path
    models: Path
    summary: Path
    scores: Path
    intervals: Path
    predictions: Path
    plots: Path
    tracking_report: Path
    gate_report: Path
    gate_markdown: Path
    model_card: Path
    figures: Path
    reference: Path
    drift_report: Path = Path("reports/drift.json")
    drift_html: Path = Path("reports/drift.html")


class Params(_Section):
    task: Task
    data: DataParams
    validate_: ValidateParams = Field(alias="validate")
    split: SplitParams
    train: TrainParams
    evaluate: EvaluateParams
    gate: GateParams
    mlflow: MlflowParams
    serve: ServeParams = ServeParams()
    monitor: MonitorParams = MonitorParams()
    paths: Paths

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"

    @model_validator(mode="after")
    def _split_columns_are_kept(self) -> Params:
        for column in self.split.columns:
            if column == self.data.target:
                raise ValueError(f"split names the target {column!r}; name another column")
            if column in self.data.drop:
                raise ValueError(
                    f"split names {column!r}, which data.drop removes: remove it from "
                    "data.drop (a column the split reads is never used as a feature)"
                )
        return self


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml; every problem is reported with its dotted key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(
            f"{path} not found: run commands from the project's root directory."
        ) from None
    except yaml.YAMLError as error:
        raise PipelineError(f"{path} is not valid YAML: {error}") from None
    try:
        params = Params.model_validate(raw)
    except ValidationError as error:
        lines = []
        for issue in error.errors():
            where = ".".join(str(part) for part in issue["loc"])
            message = issue["msg"].removeprefix("Value error, ")
            lines.append(f"  {where}: {message}" if where else f"  {message}")
        raise PipelineError(f"{path} has invalid settings:\n" + "\n".join(lines)) from None
    return params
