"""Train the floor, the baseline and the candidate on the same training split.

Which kind of model plays each role comes from params.yaml (`train.floor`, `train.baseline`,
`train.candidate`) and the catalogue in models.py. Classification targets are encoded as
integer class indices; the manifest records the classes in that order (binary: the positive
class last), so evaluation and serving map back the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }}.core.artifacts import (
    ModelManifest,
    file_sha256,
    save_models,
    target_quantiles,
)
from {{ cookiecutter.package_name }}.core.config import Params
from {{ cookiecutter.package_name }}.core.contract import load_contract
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.features import FeatureSpec, prepare_frame
from {{ cookiecutter.package_name }}.core.models import ModelKind, role_kinds
from {{ cookiecutter.package_name }}.core.records import (
    SplitDefinition,
    read_frame,
    read_record,
)


def encode_target(values: pd.Series, classes: list[Any]) -> np.ndarray:
    """Class labels -> indices into `classes`; a label never seen in training is an error."""
    # get_indexer gives -1 for unseen labels; pd.Categorical would warn (and, in pandas 4, raise).
    codes = pd.Index(classes).get_indexer(values)
    if (codes < 0).any():
        unseen = sorted(set(values[codes < 0].astype(str)))
        raise PipelineError(
            f"target values {unseen} were not in the training data (classes: {classes})."
        )
    return codes.astype(np.int64)


def class_order(labels: pd.Series, params: Params) -> list[Any]:
    """Sorted labels; for a binary task the positive class goes last (index 1)."""
    classes = sorted(labels.dropna().unique().tolist())
    if len(classes) < 2:
        raise PipelineError(f"the training split has a single class ({classes}); need 2+.")
    if params.task == "binary_classification" and len(classes) != 2:
        raise PipelineError(
            f"task is binary_classification but the target has {len(classes)} classes; "
            "set task: multiclass in params.yaml."
        )
    positive = params.data.positive_class
    if params.task != "binary_classification" or positive is None:
        return classes
    matches = [label for label in classes if label == positive or str(label) == str(positive)]
    if not matches:
        raise PipelineError(
            f"data.positive_class {positive!r} is not a class of {params.data.target!r} "
            f"(classes: {classes}); set it to one of them in params.yaml."
        )
    return [label for label in classes if label != matches[0]] + matches


def model_kinds(params: Params) -> dict[str, ModelKind]:
    """Each role's model kind with its settings, from params.yaml."""
    return role_kinds(params.train)


def fit_models(
    params: Params, spec: FeatureSpec, features: pd.DataFrame, target: np.ndarray
) -> dict[str, tuple[ModelKind, Any]]:
    fitted = {}
    for role, kind in model_kinds(params).items():
        estimator = kind.build(params.task, spec, params.train.seed)
        fitted[role] = (kind, kind.fit(estimator, features, target, spec))
    return fitted


def run_train(params: Params) -> dict[str, Any]:
    """Stage `train`: paths.train + schema.yaml -> paths.models (models and manifest.json)."""
    contract = load_contract(params.paths.schema_file)
    spec = FeatureSpec.from_contract(contract)
    frame = read_frame(params.paths.train)
    features = prepare_frame(frame, spec)
    target_column = frame[params.data.target]
    if params.is_classification:
        classes = class_order(target_column, params)
        target = encode_target(target_column, classes)
    else:
        classes = []
        target = target_column.to_numpy(dtype=np.float64)
    train_rows = len(frame)
    del frame, target_column  # features and target are copies: free the batch before fitting
    fitted = fit_models(params, spec, features, target)
    manifest: ModelManifest = save_models(
        params.paths.models,
        fitted,
        task=params.task,
        target=params.data.target,
        classes=classes,
        numeric=list(spec.numeric),
        categorical=list(spec.categorical),
        train_rows=train_rows,
        contract_sha256=file_sha256(params.paths.schema_file),
        seed=params.train.seed,
        split=read_record(params.paths.split_report, SplitDefinition).model_dump(mode="json"),
        target_quantiles={} if params.is_classification else target_quantiles(target),
    )
    return {
        "models": {role: entry.kind for role, entry in manifest.models.items()},
        "train_rows": train_rows,
        "features": len(spec.columns),
    }
