"""The fast numpy metrics must equal scikit-learn's, ties and all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as sk
from sklearn.preprocessing import label_binarize

from {{ cookiecutter.package_name }}.core import metrics
from {{ cookiecutter.package_name }}.core.metrics import metric_names, metrics_for

TOLERANCE = 1e-9


def binary_case(seed: int, ties: bool):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    score = np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1)
    if ties:
        score = np.round(score, 1)  # many tied scores
    return labels, score


def multiclass_case(seed: int, ties: bool, k: int = 4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, 300)
    raw = rng.integers(1, 5, (300, k)).astype(float) if ties else rng.random((300, k))
    raw[np.arange(300), labels] += 1.0
    return labels, raw / raw.sum(axis=1, keepdims=True)


CASES = [(seed, ties) for seed in range(3) for ties in (False, True)]


@pytest.mark.parametrize(("seed", "ties"), CASES)
def test_binary_metrics_match_sklearn(seed, ties):
    labels, score = binary_case(seed, ties)
    predicted = (score >= 0.5).astype(int)
    expected = {
        "roc_auc": sk.roc_auc_score(labels, score),
        "average_precision": sk.average_precision_score(labels, score),
        "log_loss": sk.log_loss(labels, score),
        "accuracy": sk.accuracy_score(labels, predicted),
        "f1": sk.f1_score(labels, predicted),
    }
    for metric in metrics_for("binary_classification"):
        assert metric.compute(labels, score) == pytest.approx(
            expected[metric.name], abs=TOLERANCE
        ), metric.name


@pytest.mark.parametrize(("seed", "ties"), CASES)
def test_multiclass_metrics_match_sklearn(seed, ties):
    labels, score = multiclass_case(seed, ties)
    k = score.shape[1]
    predicted = score.argmax(axis=1)
    expected = {
        "roc_auc": sk.roc_auc_score(labels, score, multi_class="ovr", average="macro"),
        "average_precision": sk.average_precision_score(
            label_binarize(labels, classes=range(k)), score, average="macro"
        ),
        "log_loss": sk.log_loss(labels, score, labels=range(k)),
        "accuracy": sk.accuracy_score(labels, predicted),
        "f1": sk.f1_score(labels, predicted, average="macro"),
    }
    for metric in metrics_for("multiclass"):
        assert metric.compute(labels, score) == pytest.approx(
            expected[metric.name], abs=TOLERANCE
        ), metric.name


@pytest.mark.parametrize("seed", range(3))
def test_regression_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    target = rng.normal(10, 3, 150)
    predicted = np.round(target + rng.normal(0, 1, 150))
    expected = {
        "rmse": sk.root_mean_squared_error(target, predicted),
        "mae": sk.mean_absolute_error(target, predicted),
        "r2": sk.r2_score(target, predicted),
    }
    for metric in metrics_for("regression"):
        assert metric.compute(target, predicted) == pytest.approx(
            expected[metric.name], abs=TOLERANCE
        ), metric.name


def test_all_scores_tied_give_chance_auc():
    labels = np.array([0, 1, 0, 1, 1])
    assert metrics.roc_auc(labels, np.full(5, 0.3)) == 0.5
    assert metrics.average_precision(labels, np.full(5, 0.3)) == pytest.approx(0.6)


def test_undefined_metrics_are_nan_not_errors():
    """A bootstrap resample with one class must not crash the interval computation."""
    assert np.isnan(metrics.roc_auc(np.zeros(5, dtype=int), np.linspace(0, 1, 5)))
    assert np.isnan(metrics.average_precision(np.zeros(5, dtype=int), np.linspace(0, 1, 5)))
    assert np.isnan(metrics.r2(np.ones(5), np.zeros(5)))


def test_log_loss_is_finite_for_confident_mistakes():
    assert np.isfinite(metrics.log_loss(np.array([0, 1]), np.array([1.0, 0.0])))


def test_metric_catalogue_per_task():
    assert metric_names("regression") == ["rmse", "mae", "r2"]
    assert metric_names("multiclass") == metric_names("binary_classification")
    assert {m.name for m in metrics_for("regression") if m.higher_is_better} == {"r2"}


def regression_case(seed: int):
    rng = np.random.default_rng(seed)
    target = rng.normal(10, 3, 250)
    return target, np.round(target + rng.normal(0, 2, 250), 1)


def all_cases():
    for seed, ties in CASES:
        yield "binary_classification", *binary_case(seed, ties)
        yield "multiclass", *multiclass_case(seed, ties)
    for seed in range(3):
        yield "regression", *regression_case(seed)


def test_weighted_forms_with_unit_weights_equal_the_metrics():
    """The bootstrap's weighted forms give the plain metric when every row counts once."""
    for task, labels, score in all_cases():
        for metric in metrics_for(task):
            state = metric.prepare(labels, score)
            expected = metric.compute(labels, score)
            assert metric.weighted(state, np.ones(len(labels))) == pytest.approx(
                expected, abs=TOLERANCE
            ), (task, metric.name)


def test_integer_weights_equal_the_metric_of_repeated_rows():
    """Row i with weight w[i] is row i repeated w[i] times: the bootstrap's resample, exactly."""
    rng = np.random.default_rng(11)
    for task, labels, score in all_cases():
        weights = rng.poisson(1.0, len(labels))
        repeated = np.repeat(np.arange(len(labels)), weights)
        for metric in metrics_for(task):
            state = metric.prepare(labels, score)
            expected = metric.compute(labels[repeated], score[repeated])
            assert metric.weighted(state, weights.astype(float)) == pytest.approx(
                expected, abs=TOLERANCE, nan_ok=True
            ), (task, metric.name)


def test_ranking_metrics_share_one_state_that_follows_the_weights():
    """AUC and AP share a sorted state and the sums of the last read-only weights; a new or
    mutated weight vector is never answered from that memory."""
    labels, score = binary_case(4, ties=True)
    ranked = ("roc_auc", "average_precision")
    auc, ap = (m for m in metrics_for("binary_classification") if m.name in ranked)
    assert auc.prepare(labels, score) is ap.prepare(labels, score)
    rng = np.random.default_rng(3)
    for _ in range(3):
        weights = rng.poisson(1.0, len(labels)).astype(float)
        weights.flags.writeable = False
        repeated = np.repeat(np.arange(len(labels)), weights.astype(int))
        for metric in (auc, ap):
            expected = metric.compute(labels[repeated], score[repeated])
            assert metric.weighted(metric.prepare(labels, score), weights) == pytest.approx(
                expected, abs=TOLERANCE
            )
    mutable = np.ones(len(labels))
    first = auc.weighted(auc.prepare(labels, score), mutable)
    mutable[labels == 1] = 0.0  # in place: no positives left, so AUC is undefined
    assert np.isnan(auc.weighted(auc.prepare(labels, score), mutable))
    assert first == pytest.approx(auc.compute(labels, score), abs=TOLERANCE)


def test_params_yaml_lists_every_primary_metric_of_the_catalogue():
    """The comment above evaluate.primary_metric is where a user looks for the names: it must
    name exactly the catalogue's metrics, so a metric added to the catalogue is added there."""
    params_yaml = Path(__file__).resolve().parents[1] / "params.yaml"
    lines = params_yaml.read_text(encoding="utf-8").splitlines()
    end = next(i for i, line in enumerate(lines) if line.strip().startswith("primary_metric:"))
    comment = " ".join(line.strip().lstrip("#") for line in lines[end - 2 : end])
    classification, regression = comment.split("regression:")
    listed = {
        "classification": classification.split("classification:")[1],
        "regression": regression.split(". ")[0],
    }
    for task, group in [
        ("binary_classification", "classification"),
        ("multiclass", "classification"),
        ("regression", "regression"),
    ]:
        names = [name.strip(" ;.") for name in listed[group].split(",")]
        assert names == metric_names(task), (task, names)
