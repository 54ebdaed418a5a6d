"""Bootstrap intervals and the paired candidate-vs-baseline comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.core.metrics import metrics_for
from {{ cookiecutter.package_name }}.pipeline.evaluate import (
    bootstrap,
    point_scores,
    predictions_frame,
    summarize,
)

CONFIDENCE = 0.95


def evaluate(truth, scores, task, samples=300, seed=0):
    metrics = metrics_for(task)
    points = point_scores(truth, scores, metrics)
    resampled = bootstrap(truth, scores, metrics, samples=samples, seed=seed)
    return summarize(points, resampled, metrics, CONFIDENCE)


@pytest.fixture
def binary_holdout():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 200)
    weak = np.clip(0.5 + 0.1 * (truth - 0.5) + rng.normal(0, 0.25, 200), 0.01, 0.99)
    strong = np.clip(0.5 + 0.6 * (truth - 0.5) + rng.normal(0, 0.1, 200), 0.01, 0.99)
    return truth, weak, strong


def test_identical_models_show_no_improvement(binary_holdout):
    """The paired difference of a model with itself is exactly zero on every resample."""
    truth, weak, _ = binary_holdout
    summary = evaluate(truth, {"baseline": weak, "candidate": weak.copy()}, "binary_classification")
    for result in summary["candidate_vs_baseline"].values():
        assert result["improvement"] == 0.0
        assert result["lower"] == result["upper"] == 0.0


def test_clearly_better_candidate_wins_on_every_metric(binary_holdout):
    """Improvement is oriented so positive means better, also for log loss (lower is better)."""
    truth, weak, strong = binary_holdout
    summary = evaluate(truth, {"baseline": weak, "candidate": strong}, "binary_classification")
    for name, result in summary["candidate_vs_baseline"].items():
        assert result["lower"] > 0, name
        assert result["improvement"] > 0, name
    assert summary["candidate_vs_baseline"]["log_loss"]["higher_is_better"] is False


def test_worse_candidate_has_upper_bound_below_zero(binary_holdout):
    truth, weak, strong = binary_holdout
    summary = evaluate(truth, {"baseline": strong, "candidate": weak}, "binary_classification")
    assert summary["candidate_vs_baseline"]["roc_auc"]["upper"] < 0


@pytest.mark.parametrize("task", ["binary_classification", "multiclass", "regression"])
def test_intervals_contain_the_point_estimate(task):
    rng = np.random.default_rng(1)
    if task == "regression":
        truth = rng.normal(0, 1, 150)
        scores = {"baseline": truth + rng.normal(0, 1, 150), "candidate": truth * 0.9}
    elif task == "multiclass":
        truth = rng.integers(0, 3, 150)
        raw = rng.random((150, 3))
        raw[np.arange(150), truth] += 0.5
        scores = {
            "baseline": raw / raw.sum(1, keepdims=True),
            "candidate": np.full((150, 3), 1 / 3),
        }
    else:
        truth = rng.integers(0, 2, 150)
        scores = {
            "baseline": rng.random(150),
            "candidate": np.clip(truth * 0.5 + rng.random(150) * 0.5, 0, 1),
        }
    summary = evaluate(truth, scores, task)
    for model in ("baseline", "candidate"):
        for name, interval in summary[model].items():
            if np.isnan(interval["lower"]):
                continue
            # Rounding: a constant model's resampled mean may differ from its mean by 1 ulp.
            low, high = interval["lower"] - 1e-12, interval["upper"] + 1e-12
            assert low <= interval["value"] <= high, (model, name)
    for name, result in summary["candidate_vs_baseline"].items():
        low, high = result["lower"] - 1e-12, result["upper"] + 1e-12
        assert low <= result["improvement"] <= high, name


def test_bootstrap_is_reproducible_and_seeded(binary_holdout):
    truth, weak, strong = binary_holdout
    scores = {"baseline": weak, "candidate": strong}
    metrics = metrics_for("binary_classification")
    first = bootstrap(truth, scores, metrics, samples=50, seed=7)
    again = bootstrap(truth, scores, metrics, samples=50, seed=7)
    other = bootstrap(truth, scores, metrics, samples=50, seed=8)
    assert np.array_equal(first["baseline"]["log_loss"], again["baseline"]["log_loss"])
    assert not np.array_equal(first["baseline"]["log_loss"], other["baseline"]["log_loss"])
    assert first["baseline"]["log_loss"].shape == (50,)


def test_single_class_resamples_do_not_break_intervals():
    """Tiny holdouts can resample to one class; those resamples are skipped, not fatal."""
    truth = np.array([0, 0, 0, 0, 0, 0, 0, 1])
    score = np.linspace(0.1, 0.9, 8)
    summary = evaluate(truth, {"baseline": score, "candidate": score}, "binary_classification")
    interval = summary["candidate"]["roc_auc"]
    assert interval["lower"] == interval["upper"] == 1.0


def test_predictions_frame_has_one_column_per_class():
    scores = {"baseline": np.full((3, 2), 0.5), "candidate": np.array([0.1, 0.2, 0.3])}
    frame = predictions_frame(np.array([0, 1, 0]), scores)
    assert list(frame.columns) == ["truth", "baseline_p0", "baseline_p1", "candidate"]


def test_counts_give_exactly_the_resamples_of_row_indices(binary_holdout):
    """The bootstrap's counts are those of drawing row indices with replacement: every
    resampled metric equals the metric computed on the resampled rows themselves."""
    truth, weak, strong = binary_holdout
    scores = {"weak": weak, "strong": strong}
    metrics = metrics_for("binary_classification")
    counted = bootstrap(truth, scores, metrics, samples=200, seed=1)
    rng = np.random.default_rng(1)
    for b in range(200):
        rows = rng.integers(0, len(truth), size=len(truth))
        for name, score in scores.items():
            for metric in metrics:
                expected = metric.compute(truth[rows], score[rows])
                assert counted[name][metric.name][b] == pytest.approx(expected, abs=1e-9), (
                    b,
                    name,
                    metric.name,
                )


def test_bootstrap_memory_does_not_grow_with_the_number_of_resamples():
    import tracemalloc

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 20_000)
    scores = {"a": rng.random(20_000), "b": rng.random(20_000)}
    metrics = metrics_for("binary_classification")

    def peak(samples: int) -> int:
        tracemalloc.start()
        bootstrap(truth, scores, metrics, samples=samples, seed=0)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    few, many = peak(20), peak(400)
    assert many < 1.3 * few, (few, many)


def test_curves_are_thinned_to_a_bounded_number_of_points_keeping_both_ends():
    from {{ cookiecutter.package_name }}.pipeline.plots import CURVE_POINTS, thinned

    curve = pd.DataFrame(
        {"fpr": np.linspace(0, 1, 50_001), "tpr": np.linspace(0, 1, 50_001) ** 0.5}
    )
    small = thinned(curve)
    assert len(small) == CURVE_POINTS
    assert small.iloc[0].tolist() == [0.0, 0.0] and small.iloc[-1].tolist() == [1.0, 1.0]
    assert small["fpr"].is_monotonic_increasing
    assert thinned(curve.head(10)).equals(curve.head(10))


@pytest.mark.slow  # logs to an MLflow store (imports MLflow: seconds): CI runs it
def test_evaluate_and_tracking_hash_and_load_each_model_file_once(
    make_project, count_model_file_reads
):
    """The evaluate stage logs to MLflow in the same process (cli.py): the models it loaded are
    the ones tracking logs, each file hashed and unpickled once."""
    from typer.testing import CliRunner

    from {{ cookiecutter.package_name }}.cli import app
    from {{ cookiecutter.package_name }}.core import artifacts

    make_project("binary_classification")
    runner = CliRunner()
    for stage in ("ingest", "validate", "split", "train"):
        assert runner.invoke(app, [stage]).exit_code == 0, stage
    hashed, loaded = count_model_file_reads()
    result = runner.invoke(app, ["evaluate"])
    assert result.exit_code == 0, result.output
    assert "track:" in result.output  # the run was logged
    files = [f"{role}.joblib" for role in artifacts.ROLES]
    assert [hashed[name] for name in files] == [1, 1, 1]
    assert [loaded[name] for name in files] == [1, 1, 1]
