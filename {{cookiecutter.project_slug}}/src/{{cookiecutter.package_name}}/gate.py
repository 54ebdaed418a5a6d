"""The promotion rule: pure functions over measured values, then the stage that measures them.

A candidate is promoted only if every check passes (a check may be skipped, and says why):

1. beats_baseline: improvement over the baseline on the primary metric >= min_improvement, and
   the lower bound of the paired bootstrap interval of that improvement > 0;
2. not_worse_than_champion: the lower bound of the paired interval of candidate minus
   champion > -max_regression (a non-inferiority test); skipped when there is no champion;
3. latency: p95 of single-row predictions on the loaded model <= max_latency_p95_ms;
4. model_size: the serialized model <= max_model_size_mb;
5. sanity: no metric is NaN and the holdout has at least min_holdout_rows rows.

Improvements are oriented so that positive always means "the candidate is better".
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from {{ cookiecutter.package_name }}.config import Params
from {{ cookiecutter.package_name }}.files import read_json, write_json, write_text

PASS, FAIL, SKIP = "pass", "fail", "skip"
LATENCY_ROWS = 50


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # pass | fail | skip
    value: Any
    threshold: Any
    detail: str


def check_beats_baseline(improvement: dict[str, float], min_improvement: float) -> Check:
    point, lower = improvement["improvement"], improvement["lower"]
    passed = point >= min_improvement and lower > 0
    return Check(
        "beats_baseline",
        PASS if passed else FAIL,
        {"improvement": point, "ci_lower": lower, "ci_upper": improvement["upper"]},
        {"min_improvement": min_improvement, "ci_lower_above": 0.0},
        (
            f"candidate beats baseline by {point:+.4f} (95% CI {lower:+.4f} .. "
            f"{improvement['upper']:+.4f})"
            + ("" if passed else _baseline_reason(point, lower, min_improvement))
        ),
    )


def _baseline_reason(point: float, lower: float, min_improvement: float) -> str:
    if point < min_improvement:
        return f": below the required {min_improvement:+.4f}"
    return f": the interval includes {lower:+.4f} <= 0, so the gain may be noise"


def check_champion(comparison: dict[str, Any] | None, max_regression: float) -> Check:
    if comparison is None:
        return Check(
            "not_worse_than_champion",
            SKIP,
            None,
            {"max_regression": max_regression},
            "no champion in the registry yet: nothing to compare with",
        )
    if "error" in comparison:
        return Check(
            "not_worse_than_champion",
            FAIL,
            {"champion_version": comparison["version"]},
            {"max_regression": max_regression},
            f"champion v{comparison['version']} cannot score this holdout: {comparison['error']}",
        )
    lower = comparison["lower"]
    passed = lower > -max_regression
    return Check(
        "not_worse_than_champion",
        PASS if passed else FAIL,
        {
            "champion_version": comparison["version"],
            "improvement": comparison["improvement"],
            "ci_lower": lower,
            "ci_upper": comparison["upper"],
        },
        {"max_regression": max_regression},
        f"candidate vs champion v{comparison['version']}: {comparison['improvement']:+.4f} "
        f"(95% CI {lower:+.4f} .. {comparison['upper']:+.4f})"
        + ("" if passed else f": may be worse than the champion by more than {max_regression}"),
    )


def check_budget(name: str, value: float, budget: float, unit: str) -> Check:
    passed = value <= budget
    return Check(
        name,
        PASS if passed else FAIL,
        round(value, 4),
        budget,
        f"{value:.3f} {unit} (budget {budget:g} {unit})" + ("" if passed else ": over budget"),
    )


def check_sanity(metrics: dict[str, dict[str, float]], holdout_rows: int, min_rows: int) -> Check:
    nan = sorted(
        f"{model}.{metric}"
        for model, values in metrics.items()
        for metric, value in values.items()
        if value is None or (isinstance(value, float) and math.isnan(value))
    )
    problems = []
    if nan:
        problems.append(f"NaN metrics: {', '.join(nan)}")
    if holdout_rows < min_rows:
        problems.append(f"holdout has {holdout_rows} rows, fewer than {min_rows}")
    return Check(
        "sanity",
        FAIL if problems else PASS,
        {"holdout_rows": holdout_rows, "nan_metrics": nan},
        {"min_holdout_rows": min_rows},
        "; ".join(problems) or f"{holdout_rows} holdout rows, no NaN metric",
    )


def decide(checks: list[Check]) -> dict[str, Any]:
    failed = [check.name for check in checks if check.status == FAIL]
    return {
        "decision": "promote" if not failed else "reject",
        "failed_checks": failed,
        "checks": [asdict(check) for check in checks],
    }


def p95_latency_ms(predict: Any, rows: list[Any], repeats: int) -> float:
    """p95 wall time of one-row predictions, after a short warm-up."""
    for row in rows[:5]:
        predict(row)
    timings = []
    for i in range(repeats):
        start = time.perf_counter()
        predict(rows[i % len(rows)])
        timings.append((time.perf_counter() - start) * 1000.0)
    return float(np.percentile(timings, 95))


def render_markdown(report: dict[str, Any]) -> str:
    """The table a reviewer reads in the pull-request comment."""
    icon = {PASS: "✅ pass", FAIL: "❌ fail", SKIP: "⚪ skipped"}
    verdict = (
        "✅ **promote**: every check passed"
        if report["decision"] == "promote"
        else f"❌ **do not promote**: failed {', '.join(report['failed_checks'])}"
    )
    lines = [
        f"### Promotion gate: {verdict}",
        "",
        f"Primary metric: `{report['primary_metric']}` on {report['holdout_rows']} holdout rows.",
        "",
        "| check | result | measured | threshold |",
        "|---|---|---|---|",
    ]
    for check in report["checks"]:
        lines.append(
            f"| {check['name']} | {icon[check['status']]} | {check['detail']} | "
            f"`{_compact(check['threshold'])}` |"
        )
    return "\n".join(lines) + "\n"


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key}={item}" for key, item in value.items())
    return str(value)


def champion_comparison(
    params: Params, features: Any, truth: np.ndarray, candidate_scores: np.ndarray
) -> dict[str, Any] | None:
    """Paired bootstrap of candidate minus champion on the primary metric, or None."""
    from {{ cookiecutter.package_name }}.evaluate import bootstrap, paired_improvement
    from {{ cookiecutter.package_name }}.metrics import metrics_for
    from {{ cookiecutter.package_name }}.registry import champion_model

    found = champion_model(params)
    if found is None:
        return None
    model, version = found
    try:
        output = np.asarray(model.predict(features), dtype=np.float64)
    except Exception as error:  # a schema or class change makes the champion unusable here
        return {"version": version, "error": f"{type(error).__name__}: {error}"}
    champion_scores = output[:, 1] if params.task == "binary_classification" else output
    if champion_scores.shape != candidate_scores.shape:
        return {
            "version": version,
            "error": f"its predictions have shape {champion_scores.shape}, the candidate's "
            f"{candidate_scores.shape} (were the classes or the task changed?)",
        }
    metric = next(m for m in metrics_for(params.task) if m.name == params.evaluate.primary_metric)
    resampled = bootstrap(
        truth,
        {"candidate": candidate_scores, "champion": champion_scores},
        (metric,),
        samples=params.evaluate.bootstrap_samples,
        seed=params.evaluate.seed,
    )
    improvement = paired_improvement(
        metric,
        (metric.compute(truth, candidate_scores), resampled["candidate"][metric.name]),
        (metric.compute(truth, champion_scores), resampled["champion"][metric.name]),
        params.evaluate.confidence,
    )
    return {"version": version, **improvement}


def run_gate(params: Params) -> dict[str, Any]:
    """Stage `gate`: measure every check and write reports/gate.json and reports/gate.md."""
    from {{ cookiecutter.package_name }}.evaluate import holdout, predict_scores
    from {{ cookiecutter.package_name }}.train import load_models

    gate = params.gate
    primary = params.evaluate.primary_metric
    intervals = read_json(params.paths.intervals)
    scores = read_json(params.paths.scores)
    models, meta = load_models(params.paths.models)
    features, truth = holdout(params, meta)
    candidate = models["candidate"]
    candidate_scores = predict_scores(candidate, features, params.task)
    rows = [features.iloc[[i]] for i in range(min(LATENCY_ROWS, len(features)))]
    size_mb = (params.paths.models / "candidate.joblib").stat().st_size / 1e6
    checks = [
        check_beats_baseline(intervals["candidate_vs_baseline"][primary], gate.min_improvement),
        check_champion(
            champion_comparison(params, features, truth, candidate_scores), gate.max_regression
        ),
        check_budget(
            "latency_p95",
            p95_latency_ms(
                lambda row: predict_scores(candidate, row, params.task), rows, gate.latency_samples
            ),
            gate.max_latency_p95_ms,
            "ms",
        ),
        check_budget("model_size", size_mb, gate.max_model_size_mb, "MB"),
        check_sanity(scores, len(truth), gate.min_holdout_rows),
    ]
    tracking = read_json(params.paths.tracking_report)
    report = {
        "primary_metric": primary,
        "holdout_rows": len(truth),
        "candidate_run_id": tracking.get("runs", {}).get("candidate", {}).get("run_id"),
        **decide(checks),
    }
    write_json(report, params.paths.gate_report)
    write_text(render_markdown(report), params.paths.gate_markdown)
    return report
