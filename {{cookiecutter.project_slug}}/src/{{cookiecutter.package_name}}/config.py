"""Typed access to params.yaml: the only module that reads it.

Every knob lives in params.yaml so that DVC can track it; this module turns that file into
validated settings, so a typo or an out-of-range value stops the pipeline with the key's name
instead of surfacing later as a confusing failure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from {{ cookiecutter.package_name }}.errors import PipelineError
from {{ cookiecutter.package_name }}.models import KINDS, ROLES, role_type

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
    csv_separator: str = ","
    csv_decimal: str = Field(".", min_length=1, max_length=1)
    target: str
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
        path = Path(source)
        if path.is_absolute() or EXTERNAL_DATA_DIR not in path.parents:
            raise ValueError(
                f"{source!r} is not under {EXTERNAL_DATA_DIR}/: put your file there (DVC "
                "watches that directory for changes) and give its relative path"
            )
        return source

    @property
    def is_builtin(self) -> bool:
        return self.source.startswith(BUILTIN_PREFIX)


class ValidateParams(_Section):
    range_margin: float = Field(0.5, ge=0)
    max_examples: int = Field(5, ge=1)


class SplitParams(_Section):
    test_size: float = Field(gt=0, lt=1)
    seed: int
    stratify: bool = True


ModelChoice = role_type()  # one of the catalogue's kinds with its settings: {kind: ..., ...}


class TrainParams(_Section):
    seed: int
    floor: ModelChoice
    baseline: ModelChoice
    candidate: ModelChoice

    def roles(self) -> dict[str, Any]:
        return {"floor": self.floor, "baseline": self.baseline, "candidate": self.candidate}


class EvaluateParams(_Section):
    primary_metric: str
    bootstrap_samples: int = Field(1000, ge=100)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    seed: int


class GateParams(_Section):
    min_improvement: float = 0.0
    max_regression: float = Field(0.0, ge=0)
    max_latency_p95_ms: float = Field(gt=0)
    latency_samples: int = Field(200, ge=20)
    max_model_size_mb: float = Field(gt=0)
    min_holdout_rows: int = Field(50, ge=1)
    min_class_rows: int = Field(10, ge=1)


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


class Paths(_Section):
    raw: Path
    schema_file: Path = Field(alias="schema")
    validation_report: Path
    train: Path
    test: Path
    models: Path
    summary: Path
    scores: Path
    intervals: Path
    predictions: Path
    plots: Path
    tracking_report: Path
    gate_report: Path
    gate_markdown: Path


class Params(_Section):
    task: Task
    data: DataParams
    validate_: ValidateParams = Field(alias="validate")
    split: SplitParams
    train: TrainParams
    evaluate: EvaluateParams
    gate: GateParams
    mlflow: MlflowParams
    paths: Paths

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"


def _dotted(location: tuple[Any, ...]) -> str:
    """A pydantic error location as the params.yaml key, without the kind pydantic inserts after
    a role (`train.candidate.lightgbm.n_estimator` -> `train.candidate.n_estimator`)."""
    parts = [
        str(part)
        for index, part in enumerate(location)
        if not (index and part in KINDS and location[index - 1] in ROLES)
    ]
    return ".".join(parts)


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
        lines = [f"  {_dotted(issue['loc'])}: {issue['msg']}" for issue in error.errors()]
        raise PipelineError(f"{path} has invalid settings:\n" + "\n".join(lines)) from None
    # Imported here because the metric catalogue is the one place that knows metric names.
    from {{ cookiecutter.package_name }}.metrics import metric_names

    allowed = metric_names(params.task)
    if params.evaluate.primary_metric not in allowed:
        raise PipelineError(
            f"{path}: evaluate.primary_metric {params.evaluate.primary_metric!r} is not a "
            f"{params.task} metric; choose one of {', '.join(allowed)}."
        )
    return params
