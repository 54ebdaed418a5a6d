"""The metric catalogue: names, directions and fast implementations for the bootstrap.

The implementations are plain numpy rather than sklearn.metrics: the bootstrap evaluates every
metric thousands of times on resampled holdouts, where sklearn's per-call input checks cost
1-8 ms each (15+ s per run); these cost microseconds. tests/test_metrics.py checks each one
against scikit-learn on the full holdout.

Scores: binary -> P(positive class), shape (n,); multiclass -> class probabilities, (n, k);
regression -> predicted values, (n,). Labels are integer class indices.

Each metric also has a weighted form for the bootstrap (evaluate.py): `prepare(labels, score)`
runs once per model (the only sort), then `weighted(state, w)` gives the metric of a resample in
which row i appears w[i] times, in O(n) with no copy of the holdout. With w = 1 it equals
`compute`, and with integer w it equals `compute` on the rows repeated w times (both tested).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from {{ cookiecutter.package_name }}.core.errors import PipelineError

EPS = np.finfo(np.float64).eps


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    compute: Callable[[np.ndarray, np.ndarray], float]
    prepare: Callable[[np.ndarray, np.ndarray], Any]
    weighted: Callable[[Any, np.ndarray], float]


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


# --------------------------------------------------------------------------------------------
# Weighted forms for the bootstrap.
# --------------------------------------------------------------------------------------------
class _Ranking:
    """One model's scores for one class, sorted once: the state of ROC AUC and average precision.

    A resample's per-tie-group weighted counts of positives and negatives (and their running
    sums) give both metrics, so they are computed once per resample and shared: the two
    metrics' states are the same object (`_rankings`), and the sums of the last read-only
    weights are remembered (the bootstrap freezes each resample's counts).
    Buffers are allocated once; a resample then costs a gather and a few passes over the rows.
    """

    def __init__(self, positive: np.ndarray, score: np.ndarray) -> None:
        order = np.argsort(score, kind="stable")
        ordered = score[order]
        distinct = np.r_[True, ordered[1:] != ordered[:-1]]
        self.constant = not distinct[1:].any()  # e.g. the floor: one group, no sorting needed
        # int32 positions halve the gather's memory traffic; tie groups only when there are ties.
        self.order = order.astype(np.int32) if len(score) < 2**31 else order
        self.positive = positive[order].astype(np.float64)
        self.starts = None if distinct.all() else np.flatnonzero(distinct)
        self._unsorted_positive = positive.astype(np.float64)
        size = 0 if self.constant else len(score)
        self._weights, self._row_pos, self._row_neg = np.empty(size), np.empty(size), np.empty(size)
        self._last: np.ndarray | None = None
        self._sums: tuple[np.ndarray, ...] = ()

    def sums(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per tie group in ascending score order: weighted positives, negatives, and their
        running totals (all exact: the weights are counts)."""
        if w is self._last:  # only read-only weights are remembered: they cannot have changed
            return self._sums  # type: ignore[return-value]
        if self.constant:
            total_pos = _dot(w, self._unsorted_positive)
            pos, neg = np.array([total_pos]), np.array([float(w.sum()) - total_pos])
        else:
            np.take(w, self.order, out=self._weights)
            pos = np.multiply(self._weights, self.positive, out=self._row_pos)
            neg = np.subtract(self._weights, pos, out=self._row_neg)
            if self.starts is not None:
                pos = np.add.reduceat(pos, self.starts)
                neg = np.add.reduceat(neg, self.starts)
        sums = (pos, neg, np.cumsum(pos), np.cumsum(neg))
        self._last, self._sums = (None if w.flags.writeable else w), sums
        return sums


# The states of the last few (labels, score) pairs, so AUC and AP share one _Ranking per class.
# Keyed by identity and holding the arrays themselves, so an id cannot be reused while cached.
_RANKINGS: list[tuple[np.ndarray, np.ndarray, list[_Ranking]]] = []


def _rankings(labels: np.ndarray, score: np.ndarray) -> list[_Ranking]:
    """Binary: one ranking of P(positive); multiclass: one per class (one-vs-rest)."""
    for cached_labels, cached_score, rankings in _RANKINGS:
        if cached_labels is labels and cached_score is score:
            return rankings
    if score.ndim == 1:
        rankings = [_Ranking(labels == 1, score)]
    else:
        rankings = [_Ranking(labels == k, score[:, k]) for k in range(score.shape[1])]
    _RANKINGS.append((labels, score, rankings))
    del _RANKINGS[:-4]
    return rankings


def _weighted_binary_auc(ranking: _Ranking, w: np.ndarray) -> float:
    """Mann-Whitney with weights: each positive counts the negatives scored below it, ties
    counting half."""
    pos, neg, pos_to_here, neg_to_here = ranking.sums(w)
    total_pos, total_neg = pos_to_here[-1], neg_to_here[-1]
    if total_pos == 0 or total_neg == 0:
        return float("nan")
    # Negatives strictly below a group, plus half of its own: neg_to_here - neg / 2.
    return (_dot(pos, neg_to_here) - 0.5 * _dot(pos, neg)) / (total_pos * total_neg)


def _weighted_binary_ap(ranking: _Ranking, w: np.ndarray) -> float:
    """Average precision: the precision at each tie group (taken from the highest score down),
    weighted by the share of positives the group adds."""
    pos, neg, pos_to_here, neg_to_here = ranking.sums(w)
    total_pos = pos_to_here[-1]
    if total_pos == 0:
        return float("nan")
    # From the top down to group g: positives and rows at or above g's score.
    true_pos = total_pos - pos_to_here + pos
    seen = true_pos + neg_to_here[-1] - neg_to_here + neg
    ratio = np.divide(true_pos, seen, out=np.zeros_like(seen), where=seen > 0)
    return _dot(pos, ratio) / total_pos


def _mean_of(weighted: Callable[[Any, np.ndarray], float]) -> Callable[[Any, np.ndarray], float]:
    def mean(states: Any, w: np.ndarray) -> float:
        if len(states) == 1:
            return weighted(states[0], w)
        return float(np.mean([weighted(state, w) for state in states]))

    return mean


def _dot(w: np.ndarray, values: np.ndarray) -> float:
    """einsum rather than np.dot: BLAS threads oversubscribe a busy 2-core machine (40x slower)."""
    return float(np.einsum("i,i->", w, values))


def _weighted_mean(values: np.ndarray, w: np.ndarray) -> float:
    return _dot(w, values) / float(w.sum())


def _log_loss_state(labels: np.ndarray, score: np.ndarray) -> np.ndarray:
    if score.ndim == 1:
        p_true = np.where(labels == 1, score, 1.0 - score)
    else:
        p_true = score[np.arange(len(labels)), labels]
    return -np.log(np.clip(p_true, EPS, 1.0))


def _accuracy_state(labels: np.ndarray, score: np.ndarray) -> np.ndarray:
    return (predicted_labels(score) == labels).astype(np.float64)


def _f1_state(labels: np.ndarray, score: np.ndarray) -> Any:
    predicted = predicted_labels(score)
    if score.ndim == 1:  # binary: three dot products per resample
        actual, guessed = labels == 1, predicted == 1
        return tuple(v.astype(np.float64) for v in (actual & guessed, actual, guessed))
    classes = int(max(labels.max(initial=0), predicted.max(initial=0))) + 1
    return labels, predicted, (labels == predicted).astype(np.float64), classes


def _weighted_f1(state: Any, w: np.ndarray) -> float:
    if len(state) == 3:
        hits, actual, guessed = (_dot(w, values) for values in state)
        return 2 * hits / (actual + guessed) if actual + guessed else 0.0
    labels, predicted, correct, classes = state
    per_actual = np.bincount(labels, w, classes)
    per_guessed = np.bincount(predicted, w, classes)
    per_hits = np.bincount(labels, w * correct, classes)
    present = (per_actual > 0) | (per_guessed > 0)
    ratio = 2 * per_hits[present] / (per_actual[present] + per_guessed[present])
    return float(np.mean(ratio))


def _squared_errors(target: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    return (target - predicted) ** 2


def _weighted_rmse(squared: np.ndarray, w: np.ndarray) -> float:
    return float(np.sqrt(_weighted_mean(squared, w)))


def _absolute_errors(target: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    return np.abs(target - predicted)


def _r2_state(target: np.ndarray, predicted: np.ndarray) -> Any:
    return target, (target - predicted) ** 2


def _weighted_r2(state: Any, w: np.ndarray) -> float:
    target, squared = state
    mean = _weighted_mean(target, w)
    total = _dot(w, (target - mean) ** 2)
    if total == 0:
        return float("nan")
    return 1.0 - _dot(w, squared) / total


CLASSIFICATION = (
    Metric("roc_auc", True, roc_auc, _rankings, _mean_of(_weighted_binary_auc)),
    Metric("average_precision", True, average_precision, _rankings, _mean_of(_weighted_binary_ap)),
    Metric("log_loss", False, log_loss, _log_loss_state, _weighted_mean),
    Metric("accuracy", True, accuracy, _accuracy_state, _weighted_mean),
    Metric("f1", True, f1, _f1_state, _weighted_f1),
)
REGRESSION = (
    Metric("rmse", False, rmse, _squared_errors, _weighted_rmse),
    Metric("mae", False, mae, _absolute_errors, _weighted_mean),
    Metric("r2", True, r2, _r2_state, _weighted_r2),
)


def metrics_for(task: str) -> tuple[Metric, ...]:
    return REGRESSION if task == "regression" else CLASSIFICATION


def metric_names(task: str) -> list[str]:
    return [metric.name for metric in metrics_for(task)]


def primary_metric(task: str, name: str) -> Metric:
    """`evaluate.primary_metric` from the task's catalogue. Checked by the stages that use it
    (evaluate, gate) rather than when params.yaml is read, so that core/config.py does not import
    this catalogue and editing a metric reruns only evaluate onwards."""
    for metric in metrics_for(task):
        if metric.name == name:
            return metric
    raise PipelineError(
        f"params.yaml: evaluate.primary_metric {name!r} is not a {task} metric; choose one of "
        f"{', '.join(metric_names(task))}."
    )
