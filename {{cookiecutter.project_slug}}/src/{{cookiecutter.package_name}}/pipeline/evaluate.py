"""Score every model on the holdout, with bootstrap confidence intervals, and write DVC plots.

A single number hides how much a metric would move on another holdout of the same size, so
every metric gets a percentile bootstrap interval, and the differences that decide promotion
(candidate minus baseline, baseline minus floor) are bootstrapped *paired*: both models scored
on the same resampled rows, so what the rows share cancels out.

Outputs: `scores.json` (every metric of every model), `intervals.json` (their intervals and the
paired comparisons) and `summary.json`, the few numbers DVC shows and diffs (`dvc metrics`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }}.core.artifacts import (
    COMPARISONS,
    ROLES,
    ModelManifest,
    file_sha256,
    load_models,
)
from {{ cookiecutter.package_name }}.core.config import Params
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.features import prepare_frame
from {{ cookiecutter.package_name }}.core.metrics import (
    Metric,
    metrics_for,
    primary_metric,
)
from {{ cookiecutter.package_name }}.core.records import (
    Improvement,
    Intervals,
    MetricInterval,
    Scores,
    Summary,
    read_frame,
    write_record,
)
from {{ cookiecutter.package_name }}.pipeline.train import encode_target

# (name in intervals.json, better model, reference model): the comparisons of
# artifacts.COMPARISONS that evaluate reports (the gate decides on all of them).
REPORTED = tuple(
    (c.interval, c.subject, c.reference) for c in COMPARISONS if c.interval is not None
)
SUMMARY_DIGITS = 6
# The key of reports/predictions.parquet's metadata recording what the scores came from.
PREDICTIONS_KEY = b"{{ cookiecutter.package_name }}.predictions"


def predict_scores(model: Any, features: pd.DataFrame, task: str) -> np.ndarray:
    """Binary: P(positive); multiclass: class probabilities; regression: predictions."""
    if task == "regression":
        return np.asarray(model.predict(features), dtype=np.float64)
    probabilities = np.asarray(model.predict_proba(features), dtype=np.float64)
    return probabilities[:, 1] if task == "binary_classification" else probabilities


def point_scores(
    truth: np.ndarray, scores: dict[str, np.ndarray], metrics: tuple[Metric, ...]
) -> dict[str, dict[str, float]]:
    return {
        name: {metric.name: metric.compute(truth, score) for metric in metrics}
        for name, score in scores.items()
    }


def interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile bootstrap interval, ignoring resamples where the metric is undefined."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap(
    truth: np.ndarray,
    scores: dict[str, np.ndarray],
    metrics: tuple[Metric, ...],
    *,
    samples: int,
    seed: int,
) -> dict[str, dict[str, np.ndarray]]:
    """Metric values of every model on the same `samples` resamples of the holdout rows.

    The classic bootstrap (n rows drawn with replacement), kept as counts: w[i] is how many
    times row i was drawn. Every model and metric of a resample sees the same counts, so
    comparisons stay paired. Each metric sorts a model's scores once (`Metric.prepare`); a
    resample is then one count vector and O(n) weighted sums: no index matrix, no copied
    holdout, no sorting, and memory that does not grow with `samples`. The draws are those of a
    row-index resample, so the intervals are the ones resampling rows would give.
    """
    rng = np.random.default_rng(seed)
    states = {
        name: {metric.name: metric.prepare(truth, score) for metric in metrics}
        for name, score in scores.items()
    }
    values = {name: {m.name: np.empty(samples) for m in metrics} for name in scores}
    for b in range(samples):
        drawn = rng.integers(0, len(truth), size=len(truth))
        weights = np.bincount(drawn, minlength=len(truth)).astype(np.float64)
        weights.flags.writeable = False  # lets metrics share work on it (metrics._Ranking)
        for name in scores:
            for metric in metrics:
                values[name][metric.name][b] = metric.weighted(states[name][metric.name], weights)
    return values


def summarize(
    points: dict[str, dict[str, float]],
    resampled: dict[str, dict[str, np.ndarray]],
    metrics: tuple[Metric, ...],
    confidence: float,
) -> dict[str, Any]:
    """Intervals per model and the paired comparisons of REPORTED (where both models exist)."""
    summary: dict[str, Any] = {}
    for name in resampled:
        summary[name] = {}
        for metric in metrics:
            low, high = interval(resampled[name][metric.name], confidence)
            summary[name][metric.name] = {
                "value": points[name][metric.name],
                "lower": low,
                "upper": high,
            }
    for comparison, new, old in REPORTED:
        if new in resampled and old in resampled:
            summary[comparison] = {
                metric.name: paired_improvement(
                    metric,
                    (points[new][metric.name], resampled[new][metric.name]),
                    (points[old][metric.name], resampled[old][metric.name]),
                    confidence,
                )
                for metric in metrics
            }
    return summary


def paired_improvement(
    metric: Metric,
    new: tuple[float, np.ndarray],
    old: tuple[float, np.ndarray],
    confidence: float,
) -> dict[str, Any]:
    """How much better `new` is than `old` (point, resampled values), with its paired interval.

    Oriented so that positive always means "new is better", whatever the metric's direction.
    """
    sign = 1.0 if metric.higher_is_better else -1.0
    low, high = interval(sign * (new[1] - old[1]), confidence)
    return {
        "improvement": sign * (new[0] - old[0]),
        "lower": low,
        "upper": high,
        "higher_is_better": metric.higher_is_better,
    }


def holdout(params: Params, manifest: ModelManifest) -> tuple[pd.DataFrame, np.ndarray]:
    """The holdout's model input and its truth (class indices or values), as training saw them."""
    test = read_frame(params.paths.test)
    target = test[manifest.target]
    truth = (
        encode_target(target, manifest.classes)
        if params.is_classification
        else target.to_numpy(dtype=np.float64)
    )
    return prepare_frame(test, manifest.spec), truth


def summary_metrics(intervals: Intervals) -> Summary:
    """The numbers `dvc metrics show/diff` display: the primary metric of each model and the
    paired comparisons with their bounds, rounded so every row reads in the same notation."""
    primary = intervals.primary_metric

    def rounded(value: float) -> float:
        return round(float(value), SUMMARY_DIGITS)

    models = {name: rounded(intervals.of(name)[primary].value) for name in ROLES}
    comparisons = {
        name: {
            "improvement": rounded(entry.improvement),
            "lower": rounded(entry.lower),
            "upper": rounded(entry.upper),
        }
        for name, entry in ((name, intervals.compared(name)[primary]) for name, _, _ in REPORTED)
    }
    return Summary.model_validate(
        {primary: {**models, **comparisons}, "holdout_rows": intervals.holdout_rows}
    )


def run_evaluate(params: Params) -> dict[str, Any]:
    """Stage `evaluate`: models + paths.test -> metrics, intervals, predictions, plots."""
    from {{ cookiecutter.package_name }}.pipeline.plots import write_plots

    primary_metric(params.task, params.evaluate.primary_metric)
    models, manifest = load_models(params.paths.models)
    features, truth = holdout(params, manifest)
    scores = {name: predict_scores(model, features, params.task) for name, model in models.items()}
    metrics = metrics_for(params.task)
    points = point_scores(truth, scores, metrics)
    resampled = bootstrap(
        truth,
        scores,
        metrics,
        samples=params.evaluate.bootstrap_samples,
        seed=params.evaluate.seed,
    )
    intervals = Intervals.model_validate(
        {
            "primary_metric": params.evaluate.primary_metric,
            "confidence": params.evaluate.confidence,
            "bootstrap_samples": params.evaluate.bootstrap_samples,
            "holdout_rows": len(truth),
            **summarize(points, resampled, metrics, params.evaluate.confidence),
        }
    )
    write_record(Scores.model_validate(points), params.paths.scores)
    write_record(intervals, params.paths.intervals)
    write_record(summary_metrics(intervals), params.paths.summary)
    write_predictions(params, manifest, predictions_frame(truth, scores))
    write_plots(params, manifest, truth, scores, models["candidate"], features)
    primary = params.evaluate.primary_metric
    improvement = intervals.candidate_vs_baseline[primary]
    return {
        "metric": primary,
        **{name: round(points[name][primary], 4) for name in points},
        "candidate_vs_baseline_ci": [round(improvement.lower, 4), round(improvement.upper, 4)],
    }


def predictions_frame(truth: np.ndarray, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    columns: dict[str, Any] = {"truth": truth}
    for name, score in scores.items():
        if score.ndim == 1:
            columns[name] = score
        else:
            columns.update({f"{name}_p{k}": score[:, k] for k in range(score.shape[1])})
    return pd.DataFrame(columns)


def _frame_digest(frame: pd.DataFrame) -> str:
    import hashlib

    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    return hashlib.sha256(",".join(frame.columns).encode() + hashed).hexdigest()


def write_predictions(params: Params, manifest: ModelManifest, frame: pd.DataFrame) -> None:
    """reports/predictions.parquet, recording in its metadata the SHA-256 of each model file
    and of the holdout the scores came from, and a digest of the scores: the gate reuses them
    only when all still hold."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    record = {
        "models": {role: entry.sha256 for role, entry in manifest.models.items()},
        "test_sha256": file_sha256(params.paths.test),
        "digest": _frame_digest(frame),
    }
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), PREDICTIONS_KEY: json.dumps(record).encode()}
    params.paths.predictions.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(metadata), params.paths.predictions)


def read_predictions(
    params: Params, manifest: ModelManifest, test_sha256: str, truth: np.ndarray
) -> dict[str, np.ndarray]:
    """Each model's holdout scores as evaluate wrote them, after checking they came from the
    model files of `manifest` (SHA-256) and from this holdout, and were not edited since."""
    import pyarrow.parquet as pq

    path: Path = params.paths.predictions
    rerun = "rerun `uv run dvc repro` (evaluate writes it)"
    if not path.is_file():
        raise PipelineError(f"{path} is missing: {rerun}.")
    try:
        metadata = pq.read_schema(path).metadata or {}
        record = json.loads(metadata[PREDICTIONS_KEY])
        frame = pd.read_parquet(path)
    except Exception:  # not parquet, or written by something other than evaluate
        raise PipelineError(
            f"{path} does not record which models it holds the predictions of: {rerun}."
        ) from None
    expected = {role: entry.sha256 for role, entry in manifest.models.items()}
    problem = None
    if record.get("models") != expected:
        problem = "its predictions are of other model files than models/manifest.json lists"
    elif record.get("test_sha256") != test_sha256:
        problem = f"its predictions are of another holdout than {params.paths.test}"
    elif record.get("digest") != _frame_digest(frame) or "truth" not in frame.columns:
        problem = "it was edited after evaluate wrote it"
    elif len(frame) != len(truth) or not np.array_equal(frame["truth"].to_numpy(), truth):
        problem = "its rows are not the holdout's"
    if problem is not None:
        raise PipelineError(f"{path} is stale ({problem}): {rerun}.")
    scores: dict[str, np.ndarray] = {}
    for role in manifest.models:
        if role in frame.columns:
            scores[role] = frame[role].to_numpy(dtype=np.float64)
        else:
            columns = [f"{role}_p{k}" for k in range(len(manifest.classes))]
            scores[role] = frame[columns].to_numpy(dtype=np.float64)
    return scores


def format_table(scores: Scores, intervals: Intervals) -> str:
    """The holdout metrics as a person reads them: one row per metric, intervals in brackets."""

    def cell(entry: MetricInterval) -> str:
        return f"{entry.value:.4f} [{entry.lower:.4f}, {entry.upper:.4f}]"

    def signed(entry: Improvement) -> str:
        return f"{entry.improvement:+.4f} [{entry.lower:+.4f}, {entry.upper:+.4f}]"

    header = (
        "metric",
        "floor",
        "baseline",
        "candidate",
        "candidate vs baseline (+ = better)",
        "baseline vs floor",
    )
    rows = [header]
    for metric, improvement in intervals.candidate_vs_baseline.items():
        marker = " *" if metric == intervals.primary_metric else ""
        rows.append(
            (
                metric + marker,
                f"{scores.root['floor'][metric]:.4f}",
                cell(intervals.baseline[metric]),
                cell(intervals.candidate[metric]),
                signed(improvement),
                signed(intervals.baseline_vs_floor[metric]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(
        [
            f"Holdout: {intervals.holdout_rows} rows; "
            f"{intervals.confidence:.0%} bootstrap intervals "
            f"({intervals.bootstrap_samples} resamples); * primary metric",
            *(line.rstrip() for line in lines),
        ]
    )
