"""The hand-offs between stages and commands: the files one writes and another reads.

Writing creates the output's directory (DVC does not), and reading a missing input says which
command makes it instead of raising a bare FileNotFoundError. Every JSON file has a typed
record here: writers validate what they write against these models and readers get
attributes, not string keys, so a renamed field fails where it is written, and a hand-edited
or stale file is one message naming the field, not a KeyError three modules later. (One
module for both: every stage writes a file and a record, so a stage runs one module for its
hand-offs, and ingest stays on six.)

Each model is strict (an unknown field is an error): the file and the code that reads it must
agree. `docs/reference/records.md` is generated from these models by the `report` stage.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

from {{ cookiecutter.package_name }}.core.errors import PipelineError

# --- files: every stage output is written and read through these ---------------------------


def _require(path: Path) -> None:
    if not path.exists():
        raise PipelineError(f"{path} does not exist: run the earlier stages (uv run dvc repro).")


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def read_frame(path: Path) -> pd.DataFrame:
    _require(path)
    return pd.read_parquet(path)


def write_json(payload: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    _require(path)
    return json.loads(path.read_text(encoding="utf-8"))


def write_text(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --- records: the typed JSON hand-offs ----------------------------------------------------


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


R = TypeVar("R", bound=BaseModel)


def read_record(path: Path, model: type[R]) -> R:
    """`path` as `model`; a file of another shape is one message with the field and the fix."""
    try:
        return model.model_validate(read_json(path))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(the whole file)"
        raise PipelineError(
            f"{path} is not what the pipeline writes ({where}: {first['msg']}): it was edited "
            "or written by another version. Restore it with `uv run dvc checkout`, or rerun "
            "`uv run dvc repro`."
        ) from None


def write_record(record: BaseModel, path: Path) -> None:
    """`record` as JSON. A field the writer left out (an optional one, e.g. the classes of a
    regression's split) stays out of the file, so a file keeps the shape its readers know."""
    write_json(record.model_dump(mode="json", by_alias=True, exclude_unset=True), path)


# --- ingest (pipeline/ingest.py writes reports/ingest.json) --------------------------------


class DroppedRows(Record):
    """Rows the source had and the batch does not, by reason."""

    missing_target: int = 0


class IngestReport(Record):
    """reports/ingest.json: what the ingest stage read from the source and dropped."""

    source: str
    rows_read: int
    rows: int
    columns: int
    dropped_columns: list[str]
    dropped_rows: DroppedRows
    line_offset: int | None = Field(
        description="a CSV's line of the first row (messages name rows by line); None otherwise"
    )


# --- validate (pipeline/validate.py writes reports/validation.json) ------------------------


class DataWarning(Record):
    """One warning about the batch: the column, what kind, and the message with the fix."""

    column: str
    kind: str
    message: str


class UnseenCategories(Record):
    """A categorical feature's values not among its categories in schema.yaml."""

    rows: int
    values: dict[str, int] = Field(description="value -> rows, the 20 most common")
    first_rows: list[int]


class OutsideObserved(Record):
    """A numeric feature's values outside its observed range in schema.yaml (accepted)."""

    below: int
    above: int
    observed: tuple[float, float]
    batch: tuple[float, float]
    examples: str


class ValidationReport(Record):
    """reports/validation.json: the batch passed the contract; what was found on the way."""

    model_config = ConfigDict(populate_by_name=True)

    status: Literal["passed"]
    rows: int
    columns: int
    schema_file: str = Field(alias="schema", description="the contract the batch passed")
    schema_inferred: str | None = Field(
        description="why the contract was inferred from this batch (None: read from schema.yaml)"
    )
    schema_changes: list[str]
    dropped_rows: DroppedRows
    missing_values: dict[str, int]
    ignored_columns: list[str]
    unseen_categories: dict[str, UnseenCategories]
    outside_observed_range: dict[str, OutsideObserved]
    observed_range_widened: list[str]
    warnings: list[DataWarning]


# --- split (pipeline/split.py writes reports/split.json) -----------------------------------


class ForcedRows(Record):
    """Rows moved across so both sides hold every class, by their key hash (hex)."""

    holdout: list[str] = []
    train: list[str] = []


class SideRows(Record):
    """Rows on each side of the split."""

    train: int
    holdout: int


class SplitDefinition(Record):
    """reports/split.json: the rule that split the batch, enough to tell for any later batch
    which rows a model trained under it never saw (`fingerprint`: the same rule, the same
    holdout rows)."""

    method: Literal["random", "hash", "time", "group"] = Field(description="split.method")
    key: dict[str, str] = Field(
        description="the columns whose values decide a row's side, with the kind they are read "
        "as (`{}` for random)"
    )
    row_contents: bool = Field(
        description="the key is the row's contents (hash without `split.key`): every column of "
        "the source but the target, dropped columns included"
    )
    occurrence: bool = Field(
        description="the k-th copy of a key (in file order) is hashed with k, so identical rows "
        "spread over both sides"
    )
    test_size: float = Field(description="split.test_size")
    seed: int = Field(description="split.seed")
    stratify: bool = Field(description="split.stratify (classification only)")
    hash: str | None = Field(description="the hash function (hash and group)")
    time_cutoff: str | float | None = Field(
        description="time: the latest time in training; the holdout is later"
    )
    forced: ForcedRows = Field(
        description="hash with stratify: hashes of rows moved so every class is on both sides"
    )
    stable: bool = Field(
        description="`false` for random: which rows are held out depends on the whole batch"
    )
    fingerprint: str = Field(
        description="SHA-256 of the rule (`method`, `key`, `row_contents`, `occurrence`, "
        "`test_size`, `seed`, `stratify`, `hash`, `time_cutoff`, `forced`): equal "
        "fingerprints, same rule"
    )
    warnings: list[str] = Field(
        description="a holdout share far from `test_size`, with its cause and the fix"
    )
    rows: SideRows
    classes: dict[str, dict[str, int]] | None = Field(
        None, description="side -> class -> rows (classification only; absent otherwise)"
    )


# --- evaluate (pipeline/evaluate.py writes metrics/*.json, read by `dvc metrics`) ----------


class Scores(RootModel[dict[str, dict[str, float]]]):
    """metrics/scores.json: `{model role: {metric: value}}`, every metric of every model on
    the holdout. A mapping whose keys are the data's (a `dvc metrics` file)."""

    model_config = ConfigDict(frozen=True)


class MetricInterval(Record):
    """A metric's value on the holdout and its bootstrap interval."""

    value: float
    lower: float
    upper: float


class Improvement(Record):
    """How much better one model is than another (positive: better, whatever the metric's
    direction), with its paired bootstrap interval."""

    improvement: float
    lower: float
    upper: float
    higher_is_better: bool


class Intervals(Record):
    """metrics/intervals.json: every model's metrics (`{metric: MetricInterval}`) and the
    paired comparisons the gate decides on (`{metric: Improvement}`)."""

    primary_metric: str
    confidence: float
    bootstrap_samples: int
    holdout_rows: int
    floor: dict[str, MetricInterval]
    baseline: dict[str, MetricInterval]
    candidate: dict[str, MetricInterval]
    candidate_vs_baseline: dict[str, Improvement]
    baseline_vs_floor: dict[str, Improvement]

    def of(self, role: str) -> dict[str, MetricInterval]:
        """The intervals of one model, by role (floor, baseline, candidate)."""
        return {"floor": self.floor, "baseline": self.baseline, "candidate": self.candidate}[role]

    def compared(self, name: str) -> dict[str, Improvement]:
        """One paired comparison, by its name (artifacts.COMPARISONS' `interval`)."""
        return {
            "candidate_vs_baseline": self.candidate_vs_baseline,
            "baseline_vs_floor": self.baseline_vs_floor,
        }[name]


class SummaryComparison(Record):
    """A paired comparison of the primary metric, rounded."""

    improvement: float
    lower: float
    upper: float


class PrimarySummary(Record):
    """The primary metric of each model and the paired comparisons, rounded."""

    floor: float
    baseline: float
    candidate: float
    candidate_vs_baseline: SummaryComparison
    baseline_vs_floor: SummaryComparison


class Summary(RootModel[dict[str, PrimarySummary | int]]):
    """metrics/summary.json, the numbers `dvc metrics show/diff` display:
    `{primary metric: PrimarySummary, "holdout_rows": rows}`."""

    model_config = ConfigDict(frozen=True)


# --- the gate (promotion/gate.py writes reports/gate.json) ---------------------------------


class GateCheck(Record):
    """One check of the gate. `status`: pass | fail | skip | unmet (a comparison that did not
    hold, without blocking on its own)."""

    name: str
    status: Literal["pass", "fail", "skip", "unmet"]
    value: Any
    threshold: Any
    detail: str


class ProposedModel(Record):
    """The model file the gate judged, by role and SHA-256."""

    role: Literal["floor", "baseline", "candidate"]
    kind: str
    file: str
    sha256: str


class GateReport(Record):
    """reports/gate.json: the gate's verdict, every check, and the rules it applied."""

    decision: Literal["promote", "reject"]
    proposed: str | None
    proposed_model: ProposedModel | None
    explanation: str
    primary_metric: str
    holdout_rows: int
    confidence: float
    latency_measure: str | None = None
    checks: list[GateCheck]
    failed_checks: list[str]
    warnings: list[Any]
    inputs: dict[str, str]
    rules: dict[str, Any]

    def check(self, name: str) -> GateCheck | None:
        return next((check for check in self.checks if check.name == name), None)


# --- MLflow logging (promotion/tracking.py writes reports/tracking.json) -------------------


class LoggedRun(Record):
    """One model's MLflow run: the logged model and the judged joblib file with its hash."""

    run_id: str
    model_uri: str
    artifact_path: str
    artifact_sha256: str


class TrackingReport(Record):
    """reports/tracking.json: where evaluate logged this pipeline run."""

    tracking_uri: str
    experiment: str
    parent_run_id: str
    runs: dict[str, LoggedRun]
    data: dict[str, str]


# --- drift (monitoring/drift.py writes reports/drift.json) --------------------------------


class ShareChange(Record):
    """A share (of a category's rows, of missing values) in the training data and the batch."""

    reference: float
    current: float


class DriftTest(Record):
    """A drift test's result; the fields a test does not produce are absent from the file."""

    test: str | None = Field(None, description="ks (numbers), psi (categories), - (not run)")
    drift: bool
    note: str | None = None
    skipped: bool | None = None
    statistic: float | None = None
    p_value: float | None = None
    threshold: str | None = None
    reference_mean: float | None = None
    current_mean: float | None = None
    outside_range_share: float | None = None
    observed_range: tuple[float, float] | None = None
    bins: int | None = None
    largest_changes: dict[str, ShareChange] | None = None


class FeatureDrift(DriftTest):
    """One feature's drift test, with its kind and share of the model's importance."""

    kind: str
    weight: float


class PredictionDrift(DriftTest):
    """The drift of the predictions: the model's on the batch, or the prediction log's."""

    model: str | None = None
    source: str | None = None


class Importance(Record):
    """Where the features' weights come from (None: every feature weighs the same)."""

    source: str | None
    top_features: list[str]


class DataQuality(Record):
    """The batch against the contract: missing columns, broken rules, missing values that rose."""

    missing_columns: list[str]
    rows_breaking_the_contract: int
    broken_rules_by_column: dict[str, int]
    examples: list[str]
    missing_values_rose: dict[str, ShareChange]
    failed: bool


class DriftReport(Record):
    """reports/drift.json: the drift verdict on a batch (`drift`) and every reason for it."""

    current: str
    rows: int
    reference_rows: int
    drifted_features: list[str]
    drifted_share: float
    weighted_share: float
    threshold_share: float
    importance: Importance
    features: dict[str, FeatureDrift]
    prediction: PredictionDrift
    quality: DataQuality
    reasons: list[str]
    drift: bool


# The files by their default path (params.yaml's paths).
RECORDS: dict[str, type[BaseModel]] = {
    "reports/ingest.json": IngestReport,
    "reports/validation.json": ValidationReport,
    "reports/split.json": SplitDefinition,
    "metrics/scores.json": Scores,
    "metrics/intervals.json": Intervals,
    "metrics/summary.json": Summary,
    "reports/gate.json": GateReport,
    "reports/tracking.json": TrackingReport,
    "reports/drift.json": DriftReport,
}


def _type_name(annotation: Any) -> str:
    """`str`, `list[GateCheck]`, `ProposedModel or None`: a field's type as a reader writes it."""
    if isinstance(annotation, type) and not get_args(annotation):
        return annotation.__name__
    text = str(annotation).replace(" | ", " or ").replace("NoneType", "None")
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models a field's type names, at any depth (`dict[str, list[GateCheck]]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for argument in get_args(annotation) for model in _models_in(argument)]


def reference(records: dict[str, type[BaseModel]] = RECORDS) -> str:
    """Markdown reference of `records` (file -> model), from the models' fields and docstrings.
    The report stage adds models/manifest.json (core/artifacts.py's ModelManifest): importing
    it here would make the model code a DVC dep of ingest, validate and split."""
    lines = [
        "# Records: the files stages hand to each other",
        "",
        "Generated from `core/records.py` by the `report` stage. Every field is required unless "
        "it has a default; an unknown field is an error. The paths are params.yaml's defaults "
        "(`paths`).",
    ]
    seen: set[type[BaseModel]] = set()

    def describe(model: type[BaseModel], title: str) -> None:
        if model in seen:
            return
        seen.add(model)
        lines.extend(["", f"## {title}", "", inspect.cleandoc(model.__doc__ or ""), ""])
        fields = model.model_fields
        if issubclass(model, RootModel):
            lines.append(f"The file is one mapping: `{_type_name(fields['root'].annotation)}`.")
        else:
            lines.extend(["| field | type | default | meaning |", "|---|---|---|---|"])
        nested = []
        for name, field in fields.items():
            if name != "root" or not issubclass(model, RootModel):
                default = "" if field.is_required() else repr(field.default)
                key = field.alias or name
                meaning = (field.description or "").replace("|", "/")
                lines.append(
                    f"| `{key}` | `{_type_name(field.annotation)}` | {default} | {meaning} |"
                )
            nested += _models_in(field.annotation)
        for child in nested:
            describe(child, f"`{child.__name__}`")

    for path, model in records.items():
        describe(model, f"`{path}` ({model.__name__})")
    return "\n".join(lines) + "\n"
