"""Train the floor, the baseline and the candidate on the same training split.

- dummy: predicts the class prior or the mean; the floor any model must clear.
- baseline: a linear model (logistic or ridge regression) with imputation, scaling and one-hot
  encoding, the simple model the candidate has to beat to count.
- candidate: LightGBM with native categorical splits and native missing-value handling.

Classification targets are encoded as integer class indices in sorted label order; the labels
are saved in models/meta.json so evaluation and serving can map back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }}.config import Params
from {{ cookiecutter.package_name }}.errors import PipelineError
from {{ cookiecutter.package_name }}.features import (
    FeatureSpec,
    categorical_indices,
    linear_preprocessor,
    prepare_frame,
    tree_preprocessor,
)
from {{ cookiecutter.package_name }}.files import read_frame, read_json, write_json
from {{ cookiecutter.package_name }}.schema import load_contract

MODEL_NAMES = ("dummy", "baseline", "candidate")
META_FILE = "meta.json"


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


def build_models(params: Params, spec: FeatureSpec) -> dict[str, Any]:
    from lightgbm import LGBMClassifier, LGBMRegressor
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline

    seed = params.train.seed
    baseline, candidate = params.train.baseline, params.train.candidate
    lightgbm_options = {
        **candidate.model_dump(),
        "random_state": seed,
        "n_jobs": 1,  # deterministic, and DVC stages run one at a time anyway
        "verbose": -1,
    }
    if params.is_classification:
        dummy: Any = DummyClassifier(strategy="prior")
        linear: Any = LogisticRegression(C=baseline.C, max_iter=baseline.max_iter)
        booster: Any = LGBMClassifier(**lightgbm_options)
    else:
        dummy = DummyRegressor(strategy="mean")
        linear = Ridge(alpha=baseline.alpha, max_iter=baseline.max_iter, random_state=seed)
        booster = LGBMRegressor(**lightgbm_options)
    return {
        "dummy": dummy,
        "baseline": Pipeline([("prep", linear_preprocessor(spec)), ("model", linear)]),
        "candidate": Pipeline([("prep", tree_preprocessor(spec)), ("model", booster)]),
    }


def fit_models(
    params: Params, spec: FeatureSpec, features: pd.DataFrame, target: np.ndarray
) -> dict[str, Any]:
    models = build_models(params, spec)
    for name, model in models.items():
        fit_options = (
            {"model__categorical_feature": categorical_indices(spec)} if name == "candidate" else {}
        )
        model.fit(features, target, **fit_options)
    return models


def save_models(models: dict[str, Any], meta: dict[str, Any], directory: Path) -> None:
    import joblib

    directory.mkdir(parents=True, exist_ok=True)
    for name, model in models.items():
        joblib.dump(model, directory / f"{name}.joblib")
    write_json(meta, directory / META_FILE)


def load_models(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fitted models and their metadata, as the train stage saved them."""
    import joblib

    meta = read_json(directory / META_FILE)
    return {name: joblib.load(directory / f"{name}.joblib") for name in meta["models"]}, meta


def run_train(params: Params) -> dict[str, Any]:
    """Stage `train`: paths.train + schema.yaml -> paths.models/{dummy,baseline,candidate}."""
    contract = load_contract(params.paths.schema_file)
    spec = FeatureSpec.from_contract(contract)
    frame = read_frame(params.paths.train)
    features = prepare_frame(frame, spec)
    target_column = frame[params.data.target]
    if params.is_classification:
        classes = sorted(target_column.dropna().unique().tolist())
        if len(classes) < 2:
            raise PipelineError(f"the training split has a single class ({classes}); need 2+.")
        if params.task == "binary_classification" and len(classes) != 2:
            raise PipelineError(
                f"task is binary_classification but the target has {len(classes)} classes; "
                "set task: multiclass in params.yaml."
            )
        target = encode_target(target_column, classes)
    else:
        classes = []
        target = target_column.to_numpy(dtype=np.float64)
    models = fit_models(params, spec, features, target)
    meta = {
        "task": params.task,
        "target": params.data.target,
        "classes": classes,
        "numeric": list(spec.numeric),
        "categorical": list(spec.categorical),
        "models": list(MODEL_NAMES),
        "train_rows": len(frame),
    }
    save_models(models, meta, params.paths.models)
    return {"models": list(models), "train_rows": len(frame), "features": len(spec.columns)}
