"""The metric catalogue: names, directions and fast implementations for the bootstrap.

The implementations are plain numpy rather than sklearn.metrics: the bootstrap evaluates every
metric thousands of times on resampled holdouts, where sklearn's per-call input checks cost
1-8 ms each (15+ s per run); these cost microseconds. tests/test_metrics.py checks each one
against scikit-learn on the full holdout.

Scores: binary -> P(positive class), shape (n,); multiclass -> class probabilities, (n, k);
regression -> predicted values, (n,). Labels are integer class indices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

EPS = np.finfo(np.float64).eps


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    compute: Callable[[np.ndarray, np.ndarray], float]


def _rank(values: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties sharing their mean rank, as in Mann-Whitney."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    boundaries = np.r_[True, sorted_values[1:] != sorted_values[:-1], True]
    starts = np.flatnonzero(boundaries)
    mean_ranks = (starts[:-1] + starts[1:] + 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(mean_ranks, np.diff(starts))
    return ranks


def binary_roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _rank(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_average_precision(positive: np.ndarray, score: np.ndarray) -> float:
    n_pos = int(positive.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-score, kind="mergesort")
    sorted_score, sorted_positive = score[order], positive[order]
    last_of_ties = np.r_[np.flatnonzero(np.diff(sorted_score)), len(score) - 1]
    true_pos = np.cumsum(sorted_positive)[last_of_ties]
    precision = true_pos / (last_of_ties + 1)
    recall = true_pos / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def binary_f1(positive: np.ndarray, predicted: np.ndarray) -> float:
    true_pos = np.sum(positive & predicted)
    denominator = positive.sum() + predicted.sum()
    return float(2 * true_pos / denominator) if denominator else 0.0


def predicted_labels(score: np.ndarray) -> np.ndarray:
    return (score >= 0.5).astype(np.int64) if score.ndim == 1 else score.argmax(axis=1)


def roc_auc(labels: np.ndarray, score: np.ndarray) -> float:
    """Binary ROC AUC, or the unweighted mean of one-vs-rest AUCs for multiclass."""
    if score.ndim == 1:
        return binary_roc_auc(labels == 1, score)
    return float(np.mean([binary_roc_auc(labels == k, score[:, k]) for k in range(score.shape[1])]))


def average_precision(labels: np.ndarray, score: np.ndarray) -> float:
    if score.ndim == 1:
        return binary_average_precision(labels == 1, score)
    return float(
        np.mean([binary_average_precision(labels == k, score[:, k]) for k in range(score.shape[1])])
    )


def log_loss(labels: np.ndarray, score: np.ndarray) -> float:
    if score.ndim == 1:
        p_true = np.where(labels == 1, score, 1.0 - score)
    else:
        p_true = score[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(p_true, EPS, 1.0))))


def accuracy(labels: np.ndarray, score: np.ndarray) -> float:
    return float(np.mean(predicted_labels(score) == labels))


def f1(labels: np.ndarray, score: np.ndarray) -> float:
    """F1 of the positive class (binary) or macro F1 over classes present (multiclass)."""
    predicted = predicted_labels(score)
    if score.ndim == 1:
        return binary_f1(labels == 1, predicted == 1)
    present = np.union1d(labels, predicted)
    return float(np.mean([binary_f1(labels == k, predicted == k) for k in present]))


def rmse(target: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((target - predicted) ** 2)))


def mae(target: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(target - predicted)))


def r2(target: np.ndarray, predicted: np.ndarray) -> float:
    total = np.sum((target - target.mean()) ** 2)
    if total == 0:
        return float("nan")
    return float(1.0 - np.sum((target - predicted) ** 2) / total)


CLASSIFICATION = (
    Metric("roc_auc", True, roc_auc),
    Metric("average_precision", True, average_precision),
    Metric("log_loss", False, log_loss),
    Metric("accuracy", True, accuracy),
    Metric("f1", True, f1),
)
REGRESSION = (
    Metric("rmse", False, rmse),
    Metric("mae", False, mae),
    Metric("r2", True, r2),
)


def metrics_for(task: str) -> tuple[Metric, ...]:
    return REGRESSION if task == "regression" else CLASSIFICATION


def metric_names(task: str) -> list[str]:
    return [metric.name for metric in metrics_for(task)]
