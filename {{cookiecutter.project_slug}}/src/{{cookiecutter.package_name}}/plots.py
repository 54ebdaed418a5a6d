"""Plot data for `dvc plots show`: curves, confusion matrix, residuals, feature importance.

DVC renders plots from plain CSV files with the templates named in dvc.yaml, so this module
only writes tidy tables; which files exist depends on the task and matches dvc.yaml.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }}.config import Params
from {{ cookiecutter.package_name }}.metrics import predicted_labels

CURVE_MODELS = ("baseline", "candidate")


def _write_csv(frame: pd.DataFrame, path: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def feature_importance(candidate: Any) -> pd.DataFrame:
    """Total gain per input column of the LightGBM candidate, largest first."""
    names = candidate.named_steps["prep"].get_feature_names_out()
    booster = candidate.named_steps["model"].booster_
    gain = booster.feature_importance(importance_type="gain")
    frame = pd.DataFrame({"feature": names, "importance": np.round(gain, 6)})
    return frame.sort_values("importance", ascending=False, ignore_index=True)


def write_plots(
    params: Params,
    meta: dict[str, Any],
    truth: np.ndarray,
    scores: dict[str, np.ndarray],
    candidate: Any,
) -> None:
    from sklearn.metrics import precision_recall_curve, roc_curve

    directory = params.paths.plots
    if params.task == "binary_classification":
        for name in CURVE_MODELS:
            fpr, tpr, _ = roc_curve(truth, scores[name])
            _write_csv(pd.DataFrame({"fpr": fpr, "tpr": tpr}), directory / "roc" / f"{name}.csv")
            precision, recall, _ = precision_recall_curve(truth, scores[name])
            _write_csv(
                pd.DataFrame({"recall": recall, "precision": precision}),
                directory / "precision_recall" / f"{name}.csv",
            )
    if params.task == "regression":
        _write_csv(
            pd.DataFrame({"actual": truth, "predicted": scores["candidate"]}),
            directory / "residuals.csv",
        )
    else:
        classes = np.asarray([str(label) for label in meta["classes"]], dtype=object)
        predicted = predicted_labels(scores["candidate"])
        _write_csv(
            pd.DataFrame({"actual": classes[truth], "predicted": classes[predicted]}),
            directory / "confusion.csv",
        )
    _write_csv(feature_importance(candidate), directory / "importance.csv")
