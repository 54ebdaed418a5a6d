"""Plot data for `dvc plots show`: curves, confusion matrix, residuals, feature importance.

DVC renders plots from plain CSV files with the templates named in dvc.yaml, so this module
only writes tidy tables; which files exist depends on the task and matches dvc.yaml.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }}.core.artifacts import ModelManifest
from {{ cookiecutter.package_name }}.core.config import Params
from {{ cookiecutter.package_name }}.core.metrics import predicted_labels
from {{ cookiecutter.package_name }}.core.models import create

CURVE_MODELS = ("baseline", "candidate")
# A curve has up to one point per holdout row: more than a chart can show, and megabytes of CSV
# in git on a large holdout. Evenly spaced points along the curve keep its shape.
CURVE_POINTS = 1000
PERMUTATION_ROWS = 2000
PERMUTATION_REPEATS = 5


def thinned(frame: pd.DataFrame, points: int = CURVE_POINTS) -> pd.DataFrame:
    """At most `points` rows, evenly spaced, always keeping the first and the last."""
    if len(frame) <= points:
        return frame
    keep = np.unique(np.linspace(0, len(frame) - 1, points).round().astype(np.int64))
    return frame.iloc[keep].reset_index(drop=True)


def _write_csv(frame: pd.DataFrame, path: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def feature_importance(
    manifest: ModelManifest, candidate: Any, features: pd.DataFrame, truth: np.ndarray, seed: int
) -> pd.DataFrame:
    """Importance per input column of the candidate, largest first.

    The model kind's own measure when it has one (LightGBM: total gain); otherwise the mean drop
    of the model's score (accuracy or R^2) when a column is shuffled, on at most
    PERMUTATION_ROWS holdout rows.
    """
    entry = manifest.models["candidate"]
    native = create(entry.kind, entry.settings).importance(candidate)
    if native is None:
        from sklearn.inspection import permutation_importance

        rows = min(len(features), PERMUTATION_ROWS)
        measured = permutation_importance(
            candidate,
            features.iloc[:rows],
            truth[:rows],
            n_repeats=PERMUTATION_REPEATS,
            random_state=seed,
        )
        native = dict(zip(features.columns, measured.importances_mean, strict=True))
    frame = pd.DataFrame(
        {"feature": list(native), "importance": np.round(list(native.values()), 6)}
    )
    return frame.sort_values("importance", ascending=False, ignore_index=True)


def write_plots(
    params: Params,
    manifest: ModelManifest,
    truth: np.ndarray,
    scores: dict[str, np.ndarray],
    candidate: Any,
    features: pd.DataFrame,
) -> None:
    from sklearn.metrics import precision_recall_curve, roc_curve

    directory = params.paths.plots
    if params.task == "binary_classification":
        for name in CURVE_MODELS:
            fpr, tpr, _ = roc_curve(truth, scores[name])
            _write_csv(
                thinned(pd.DataFrame({"fpr": fpr, "tpr": tpr})), directory / "roc" / f"{name}.csv"
            )
            precision, recall, _ = precision_recall_curve(truth, scores[name])
            _write_csv(
                thinned(pd.DataFrame({"recall": recall, "precision": precision})),
                directory / "precision_recall" / f"{name}.csv",
            )
    if params.task == "regression":
        _write_csv(
            pd.DataFrame({"actual": truth, "predicted": scores["candidate"]}),
            directory / "residuals.csv",
        )
    else:
        classes = np.asarray([str(label) for label in manifest.classes], dtype=object)
        predicted = predicted_labels(scores["candidate"])
        _write_csv(
            pd.DataFrame({"actual": classes[truth], "predicted": classes[predicted]}),
            directory / "confusion.csv",
        )
    importance = feature_importance(manifest, candidate, features, truth, params.evaluate.seed)
    _write_csv(importance, directory / "importance.csv")
