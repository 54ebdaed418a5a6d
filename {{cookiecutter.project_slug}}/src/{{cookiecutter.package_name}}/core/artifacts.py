"""The trained models on disk: one typed manifest, and loading that checks every byte first.

The train stage writes `models/<role>.joblib` and `models/manifest.json`. Everything after it
(evaluate, gate, tracking, promote, serving) reads the models through this module, so:

- what a model is (role, kind, settings, the columns it reads, the classes in index order) is
  described once, by `ModelManifest`, instead of a loose dict read by four modules;
- each file's SHA-256 is recorded when it is written and checked before it is unpickled, so a
  corrupted or swapped file is refused with a message (unpickling arbitrary bytes can crash the
  interpreter), and the same hash binds the gate's verdict to the artifact that promote registers.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.features import FeatureSpec
from {{ cookiecutter.package_name }}.core.records import write_text

MANIFEST_FILE = "manifest.json"

# --- The roles, and who is compared with whom: defined here once ---------------------------
# train fits one model per role, evaluate reports COMPARISONS with an `interval` name, the gate
# decides on all of them (PROPOSAL_ORDER) and compares the proposed model with the registry's
# champion (CHAMPION_CHECK), and tracking logs the PROPOSABLE roles (the ones a registry may
# need). A new comparison is a line here; a new role also changes the files that name each role
# (params.yaml's train section, records.Intervals: docs/architecture.md, "Recipes").

Role = Literal["floor", "baseline", "candidate"]
ROLES: tuple[Role, ...] = get_args(Role)


@dataclass(frozen=True)
class Comparison:
    """`subject` must beat `reference` on the primary metric (paired bootstrap)."""

    subject: Role
    reference: Role
    check: str  # the gate's check (reports/gate.json)
    interval: str | None = None  # its entry in metrics/intervals.json and summary.json, if any


COMPARISONS = (
    Comparison("candidate", "baseline", "beats_baseline", "candidate_vs_baseline"),
    Comparison("candidate", "floor", "candidate_beats_floor"),
    Comparison("baseline", "floor", "baseline_beats_floor", "baseline_vs_floor"),
)
# (the proposed role, the comparisons it must pass), in order: baseline first means the
# candidate is proposed only when it beats the baseline *and* the floor, else the baseline when
# it beats the floor. The floor is a yardstick, never proposed, promoted or served.
PROPOSAL_ORDER: tuple[tuple[Role, tuple[str, ...]], ...] = (
    ("candidate", ("beats_baseline", "candidate_beats_floor")),
    ("baseline", ("baseline_beats_floor",)),
)
PROPOSABLE: tuple[Role, ...] = tuple(role for role, _ in PROPOSAL_ORDER)
# The proposed model against the registry's champion: the gate's check, and `promote`'s.
CHAMPION_CHECK = "not_worse_than_champion"


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainedModel(_Frozen):
    """One trained model: its role, kind and settings, and its file with the file's hash."""

    role: Role
    kind: str
    settings: dict[str, Any]
    # What fitting chose from the data, e.g. the LightGBM rounds early stopping kept.
    fitted: dict[str, Any] = {}
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


# Regression: the percentiles of the training target at which the service bins its predictions
# (`model_predictions_total{predicted="p20-40"}`, docs/serving.md). A canary analysis compares
# the canary's and the stable pods' counts per bin as it compares class counts; the bins are
# named by percentile, not value, so two models trained on different data are still compared
# bin by bin: each bin holds a fifth of its own model's training targets.
PREDICTION_PERCENTILES = (20, 40, 60, 80)


def target_quantiles(target: Any) -> dict[str, float]:
    """The training target's values at PREDICTION_PERCENTILES, keyed by percentile."""
    import numpy as np

    values = np.percentile(np.asarray(target, dtype=np.float64), PREDICTION_PERCENTILES)
    pairs = zip(PREDICTION_PERCENTILES, values, strict=True)
    return {str(level): float(value) for level, value in pairs}


class ModelManifest(_Frozen):
    """What the train stage produced, and everything needed to use it."""

    task: str
    target: str
    classes: list[Any]  # index order of the encoded target; binary: classes[1] is positive
    numeric: list[str]
    categorical: list[str]
    train_rows: int
    contract_sha256: str
    seed: int
    # The split the models were trained under (reports/split.json): which rows they never saw.
    split: dict[str, Any] | None = None
    # Regression: target_quantiles() of the training target (none for classification).
    target_quantiles: dict[str, float] = {}
    models: dict[Role, TrainedModel]

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec(numeric=tuple(self.numeric), categorical=tuple(self.categorical))

    def model(self, role: str) -> TrainedModel:
        """The model of `role` (a name read from a registry tag or a bundle, so it is checked):
        one message naming the role, not a KeyError."""
        for name, entry in self.models.items():
            if name == role:
                return entry
        raise PipelineError(
            f"the manifest has no {role!r} model (it has {', '.join(self.models)}): it comes "
            "from another version of the pipeline; rerun `uv run dvc repro`."
        )

    @property
    def positive_class(self) -> Any:
        return self.classes[1] if self.task == "binary_classification" else None


def save_models(
    directory: Path, fitted: dict[str, tuple[Any, Any]], **description: Any
) -> ModelManifest:
    """Write each fitted model (role -> (kind, estimator)) and the manifest describing them:
    one per role of ROLES, in that order."""
    import joblib

    directory.mkdir(parents=True, exist_ok=True)
    entries: dict[Role, TrainedModel] = {}
    for role in ROLES:
        kind, estimator = fitted[role]
        path = directory / f"{role}.joblib"
        joblib.dump(estimator, path)
        entries[role] = TrainedModel(
            role=role,
            kind=kind.name,
            settings=kind.settings.model_dump(),
            fitted=kind.fitted,
            file=path.name,
            sha256=file_sha256(path),
            bytes=path.stat().st_size,
        )
    manifest = ModelManifest(models=entries, **description)
    write_text(manifest.model_dump_json(indent=2) + "\n", directory / MANIFEST_FILE)
    return manifest


def load_manifest(directory: Path) -> ModelManifest:
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise PipelineError(f"{path} does not exist: run the train stage (uv run dvc repro).")
    try:
        return ModelManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as error:
        raise PipelineError(
            f"{path} is not a model manifest ({error.error_count()} problems, first: "
            f"{error.errors()[0]['msg']}): rerun the train stage (uv run dvc repro -f train)."
        ) from None


def verify_model_file(directory: Path, entry: TrainedModel) -> Path:
    """The model's path, after checking its bytes are the ones the train stage wrote."""
    path = directory / entry.file
    if not path.is_file():
        raise PipelineError(f"{path} is missing: rerun the train stage (uv run dvc repro).")
    actual = file_sha256(path)
    if actual != entry.sha256:
        raise PipelineError(
            f"{path} is not the file the train stage wrote (SHA-256 {actual[:12]}, manifest "
            f"{entry.sha256[:12]}): it was changed or corrupted. Restore it with "
            "`uv run dvc checkout models` or retrain with `uv run dvc repro -f train`."
        )
    return path


# Inside `loaded_once()`: (path, SHA-256) -> (the file's stat when it was checked, the model).
_LOADED: dict[tuple[str, str], tuple[tuple[int, ...], Any]] | None = None


def _stat_key(path: Path) -> tuple[int, ...]:
    """Changes whenever the file is written or replaced (ctime cannot be set back by hand)."""
    stat = os.stat(path)
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


@contextmanager
def loaded_once() -> Iterator[None]:
    """Within it, each model file is hashed and unpickled once: `evaluate` then MLflow logging
    (cli.py) share the models. A file written since it was loaded is checked and loaded again."""
    global _LOADED
    outer = _LOADED
    _LOADED = {} if outer is None else outer
    try:
        yield
    finally:
        _LOADED = outer


def load_model(directory: Path, entry: TrainedModel) -> Any:
    """Unpickle one model after checking its bytes are the ones the train stage wrote."""
    key = (str((directory / entry.file).resolve()), entry.sha256)
    if _LOADED is not None and key in _LOADED:
        stat, model = _LOADED[key]
        if (directory / entry.file).is_file() and _stat_key(directory / entry.file) == stat:
            return model
    stat = _stat_key(directory / entry.file) if (directory / entry.file).is_file() else ()
    model = _unpickle(verify_model_file(directory, entry))
    if _LOADED is not None:
        _LOADED[key] = (stat, model)
    return model


def _unpickle(path: Path) -> Any:
    import joblib

    try:
        return joblib.load(path)
    except (ImportError, AttributeError) as error:  # a class the installed libraries lack
        raise PipelineError(
            f"cannot load {path} ({type(error).__name__}: {error}); were the libraries "
            "upgraded since training? `uv sync --locked`, or retrain."
        ) from None
    except Exception as error:  # the bytes the manifest records, cut short or damaged
        raise PipelineError(
            f"{path} is truncated or corrupt ({type(error).__name__}: {error}), although its "
            "SHA-256 is the one recorded (it was written that way, e.g. on a full disk). "
            "Restore it with `uv run dvc checkout models`, or rebuild it with "
            "`uv run dvc repro -f train`."
        ) from None


def single_threaded(model: Any) -> Any:
    """Predict on one thread, as the service does: it runs a process per core, and a one-row
    prediction loses more to starting threads than it gains (training may have used every
    core). Returns the model, changed in place."""
    if model is not None and hasattr(model, "get_params"):
        threads = {name: 1 for name in model.get_params() if name.split("__")[-1] == "n_jobs"}
        model.set_params(**threads)
    return model


def load_models(
    directory: Path, roles: tuple[str, ...] | None = None
) -> tuple[dict[str, Any], ModelManifest]:
    """The fitted models (all, or the given roles) and their manifest."""
    manifest = load_manifest(directory)
    wanted = tuple(manifest.models) if roles is None else roles
    return {role: load_model(directory, manifest.model(role)) for role in wanted}, manifest
