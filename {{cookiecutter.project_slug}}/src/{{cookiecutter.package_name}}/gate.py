"""The promotion rule: which model, if any, is proposed, and may it replace the champion?

Baseline first. The gate proposes:

1. the candidate, when it beats the baseline: improvement on the primary metric
   >= min_improvement and the lower bound of the paired bootstrap interval > 0;
2. otherwise the baseline, when it beats the floor (the dummy model) by the same rule: a simple
   model that clearly beats guessing is a real, deployable model;
3. otherwise nothing.

The proposed model must then pass every check (a check may be skipped, and says why):
not_worse_than_champion (the lower bound of the paired interval of proposed minus champion
> -max_regression; skipped when there is no champion), latency_p95, model_size, and sanity (no
NaN metric, enough holdout rows, enough rows of the rarest class). Improvements are oriented so
that positive always means "better".

The report records the SHA-256 of the artifact it judged and of every file it read, so that
`promote` registers exactly that artifact (see binding.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from {{ cookiecutter.package_name }}.config import Params
from {{ cookiecutter.package_name }}.files import read_json, write_json, write_text

PASS, FAIL, SKIP, UNMET = "pass", "fail", "skip", "unmet"
LATENCY_ROWS = 50
PROPOSAL_ORDER = (
    # (proposed model, check that must pass, the reference it must beat)
    ("candidate", "beats_baseline", "candidate_vs_baseline"),
    ("baseline", "baseline_beats_floor", "baseline_vs_floor"),
)
DETAIL_LIMIT = 160


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # pass | fail | skip | unmet (a comparison that did not hold, without blocking)
    value: Any
    threshold: Any
    detail: str


def _percent(confidence: float) -> str:
    return f"{confidence:.0%}"


def check_improvement(
    name: str,
    subject: str,
    reference: str,
    improvement: dict[str, float],
    min_improvement: float,
    confidence: float,
) -> Check:
    """`subject` beats `reference`: point >= min_improvement and the interval's lower bound > 0."""
    point, lower, upper = improvement["improvement"], improvement["lower"], improvement["upper"]
    passed = point >= min_improvement and lower > 0
    reason = ""
    if not passed:
        reason = (
            f": below the required {min_improvement:+.4f}"
            if point < min_improvement
            else f": the interval includes {lower:+.4f} <= 0, so the gain may be noise"
        )
    return Check(
        name,
        PASS if passed else UNMET,
        {"improvement": point, "ci_lower": lower, "ci_upper": upper},
        {"min_improvement": min_improvement, "ci_lower_above": 0.0},
        f"{subject} minus {reference}: {point:+.4f} ({_percent(confidence)} CI {lower:+.4f} .. "
        f"{upper:+.4f}){reason}",
    )


def check_champion(
    comparison: dict[str, Any] | None, max_regression: float, confidence: float = 0.95
) -> Check:
    name = "not_worse_than_champion"
    threshold = {"max_regression": max_regression}
    if comparison is None:
        return Check(name, SKIP, None, threshold, "no champion in the registry: nothing to compare")
    if "skipped" in comparison:
        return Check(
            name,
            SKIP,
            {"champion_version": comparison["version"]},
            threshold,
            comparison["skipped"],
        )
    if "error" in comparison:
        return Check(
            name,
            FAIL,
            {"champion_version": comparison["version"], "error": comparison["error"]},
            threshold,
            f"champion v{comparison['version']} cannot score this holdout: "
            + _short(comparison["error"]),
        )
    lower = comparison["lower"]
    passed = lower > -max_regression
    return Check(
        name,
        PASS if passed else FAIL,
        {
            "champion_version": comparison["version"],
            "improvement": comparison["improvement"],
            "ci_lower": lower,
            "ci_upper": comparison["upper"],
            "rows": comparison.get("rows"),
        },
        threshold,
        f"vs champion v{comparison['version']}: {comparison['improvement']:+.4f} "
        f"({_percent(confidence)} CI {lower:+.4f} .. {comparison['upper']:+.4f})"
        + (f", {comparison['note']}" if comparison.get("note") else "")
        + ("" if passed else f": may be worse than the champion by more than {max_regression}"),
    )


def _short(text: str) -> str:
    """The first line of an error, cut to fit one table cell."""
    first = str(text).strip().splitlines()[0] if str(text).strip() else ""
    first = first.replace("|", "/")
    return first if len(first) <= DETAIL_LIMIT else first[: DETAIL_LIMIT - 3] + "..."


def check_budget(name: str, value: float, budget: float, unit: str) -> Check:
    passed = value <= budget
    return Check(
        name,
        PASS if passed else FAIL,
        round(value, 4),
        budget,
        f"{value:.3f} {unit} (budget {budget:g} {unit})" + ("" if passed else ": over budget"),
    )


def check_sanity(
    metrics: dict[str, dict[str, float]],
    holdout_rows: int,
    min_rows: int,
    class_counts: dict[str, int] | None = None,
    min_class_rows: int = 1,
) -> Check:
    """Enough evidence for the intervals to mean anything: rows, rows of the rarest class, no NaN.

    A holdout of 392 rows with 7 positives passes a row count but gives intervals as wide as
    [-0.38, +0.42]; the rarest class is what limits a classifier's evaluation.
    """
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
    rarest = None
    if class_counts:
        rarest = min(class_counts, key=lambda label: class_counts[label])
        if class_counts[rarest] < min_class_rows:
            problems.append(
                f"the rarest class {rarest!r} has {class_counts[rarest]} holdout rows, fewer than "
                f"{min_class_rows}: more data or a larger split.test_size"
            )
    summary = f"{holdout_rows} holdout rows"
    if rarest is not None:
        summary += f", rarest class {rarest!r}: {class_counts[rarest]}"
    return Check(
        "sanity",
        FAIL if problems else PASS,
        {"holdout_rows": holdout_rows, "nan_metrics": nan, "class_counts": class_counts},
        {"min_holdout_rows": min_rows, "min_class_rows": min_class_rows},
        "; ".join(problems) or f"{summary}, no NaN metric",
    )


def propose(comparisons: list[Check]) -> str | None:
    """The first model of PROPOSAL_ORDER whose comparison passed."""
    passed = {check.name for check in comparisons if check.status == PASS}
    return next((model for model, check, _ in PROPOSAL_ORDER if check in passed), None)


def decide(proposed: str | None, comparisons: list[Check], checks: list[Check]) -> dict[str, Any]:
    if proposed is None:
        failed = [check.name for check in comparisons]
    else:
        failed = [check.name for check in checks if check.status == FAIL]
    return {
        "decision": "promote" if proposed is not None and not failed else "reject",
        "proposed": proposed,
        "failed_checks": failed,
        "checks": [asdict(check) for check in [*comparisons, *checks]],
    }


def explain(proposed: str | None, comparisons: list[Check]) -> str:
    """Why this model was proposed and the other was not, in a reviewer's words."""
    by_name = {check.name: check for check in comparisons}
    candidate, baseline = by_name["beats_baseline"].detail, by_name["baseline_beats_floor"].detail
    if proposed == "candidate":
        return f"The candidate is proposed: {candidate}."
    if proposed == "baseline":
        return (
            f"The baseline is proposed: {baseline}. The candidate is not, as it does not clearly "
            f"beat the baseline: {candidate}."
        )
    return (
        f"No model is proposed. The candidate does not clearly beat the baseline: {candidate}. "
        f"The baseline does not clearly beat the floor: {baseline}."
    )


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


ICONS = {PASS: "✅ pass", FAIL: "❌ fail", SKIP: "⚪ skipped", UNMET: "⚪ not met"}


def render_markdown(report: dict[str, Any]) -> str:
    """The table a reviewer reads in the pull-request comment."""
    if report["decision"] == "promote":
        verdict = f"✅ **promote the {report['proposed']}** ({report['proposed_model']['kind']})"
    else:
        verdict = f"❌ **do not promote**: failed {', '.join(report['failed_checks'])}"
    lines = [
        f"### Promotion gate: {verdict}",
        "",
        report["explanation"],
        "",
        f"Primary metric: `{report['primary_metric']}` on {report['holdout_rows']} holdout rows; "
        f"{_percent(report['confidence'])} paired bootstrap intervals.",
        "",
        "| check | result | measured | threshold |",
        "|---|---|---|---|",
    ]
    for check in report["checks"]:
        lines.append(
            f"| {check['name']} | {ICONS[check['status']]} | {_short(check['detail'])} | "
            f"`{_compact(check['threshold'])}` |"
        )
    warnings = report.get("warnings") or []
    if warnings:
        lines += ["", "**Data warnings** (from the validate stage):", ""]
        lines += [f"- `{w.get('column', '?')}`: {_short(w.get('message', ''))}" for w in warnings]
    return "\n".join(lines) + "\n"


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key}={item}" for key, item in value.items())
    return str(value)


def champion_comparison(
    params: Params, features: Any, truth: np.ndarray, proposed_scores: np.ndarray, store: Any
) -> dict[str, Any] | None:
    """Paired bootstrap of proposed minus champion on the primary metric, or None."""
    from {{ cookiecutter.package_name }}.registry import champion_model

    found = champion_model(store)
    if found is None:
        return None
    model, version = found
    from {{ cookiecutter.package_name }}.registry import split_of

    rows, note = rows_unseen(params, [split_of(store, version)], len(truth))
    if rows is None:
        return {"version": version, "skipped": f"vs champion v{version}: {note}"}
    return {
        **compare_on_holdout(
            params, model, version, features[rows], truth[rows], proposed_scores[rows]
        ),
        "note": note,
    }


def rows_unseen(
    params: Params, definitions: list[dict[str, Any] | None], n_rows: int
) -> tuple[np.ndarray | None, str]:
    """The current holdout rows that models trained under `definitions` never saw, and a note
    saying which; (None, reason) when that cannot be told or leaves too few rows.

    After data grows or the split changes, a champion may have trained on rows of today's
    holdout; comparing on those would flatter it.
    """
    import pandas as pd

    from {{ cookiecutter.package_name }}.files import read_frame, read_json
    from {{ cookiecutter.package_name }}.split import holdout_under

    current = read_json(params.paths.split_report)
    rows = np.ones(n_rows, dtype=bool)
    changed = False
    for definition in definitions:
        if not definition:
            return None, "its split was not recorded, so its training rows are unknown: skipped"
        if definition.get("fingerprint") == current.get("fingerprint") and definition.get(
            "stable", True
        ):
            continue  # the same rule: today's holdout rows were never in its training rows
        changed = True
        try:
            mask = holdout_under(read_frame(params.paths.test), definition)
        except (KeyError, ValueError, TypeError) as error:
            return None, f"the split definition changed and cannot be applied ({error}): skipped"
        if mask is None:
            return None, "it was split at random, so its training rows are unknown: skipped"
        rows &= np.asarray(pd.Series(mask), dtype=bool)
    count = int(rows.sum())
    if count < params.gate.min_holdout_rows:
        return None, (
            f"only {count} of {n_rows} holdout rows were unseen by it (split changed), fewer "
            f"than gate.min_holdout_rows={params.gate.min_holdout_rows}: skipped"
        )
    note = (
        f"on {count} of {n_rows} holdout rows it never trained on (the split changed)"
        if changed
        else f"on all {n_rows} holdout rows (same split: it never trained on them)"
    )
    return rows, note


def compare_on_holdout(
    params: Params,
    model: Any,
    version: int,
    features: Any,
    truth: np.ndarray,
    new_scores: np.ndarray,
) -> dict[str, Any]:
    """`new_scores` against what registered `model` (MLflow pyfunc) predicts on the same rows."""
    from {{ cookiecutter.package_name }}.evaluate import bootstrap, paired_improvement
    from {{ cookiecutter.package_name }}.metrics import metrics_for

    try:
        output = np.asarray(model.predict(features), dtype=np.float64)
    except Exception as error:  # a schema or class change makes the model unusable here
        return {"version": version, "error": f"{type(error).__name__}: {error}"}
    old_scores = output[:, 1] if params.task == "binary_classification" else output
    if old_scores.shape != new_scores.shape:
        return {
            "version": version,
            "error": f"its predictions have shape {old_scores.shape}, the proposed model's "
            f"{new_scores.shape} (were the classes or the task changed?)",
        }
    metric = next(m for m in metrics_for(params.task) if m.name == params.evaluate.primary_metric)
    resampled = bootstrap(
        truth,
        {"new": new_scores, "old": old_scores},
        (metric,),
        samples=params.evaluate.bootstrap_samples,
        seed=params.evaluate.seed,
    )
    improvement = paired_improvement(
        metric,
        (metric.compute(truth, new_scores), resampled["new"][metric.name]),
        (metric.compute(truth, old_scores), resampled["old"][metric.name]),
        params.evaluate.confidence,
    )
    return {"version": version, "rows": len(truth), **improvement}


def class_counts(truth: np.ndarray, classes: list[Any]) -> dict[str, int]:
    counts = np.bincount(truth, minlength=len(classes))
    return {str(label): int(count) for label, count in zip(classes, counts, strict=True)}


def build_report(params: Params, store: Any | None) -> dict[str, Any]:
    """Measure every check. `store` is the registry (registry.Store), or None without one."""
    from {{ cookiecutter.package_name }}.artifacts import (
        file_sha256,
        load_manifest,
        load_model,
    )
    from {{ cookiecutter.package_name }}.evaluate import holdout, predict_scores

    gate, paths = params.gate, params.paths
    confidence = params.evaluate.confidence
    primary = params.evaluate.primary_metric
    intervals = read_json(paths.intervals)
    scores = read_json(paths.scores)
    comparisons = [
        check_improvement(
            check_name,
            model,
            reference.split("_vs_")[1],
            intervals[reference][primary],
            gate.min_improvement,
            confidence,
        )
        for model, check_name, reference in PROPOSAL_ORDER
    ]
    proposed = propose(comparisons)
    manifest = load_manifest(paths.models)
    features, truth = holdout(params, manifest)
    checks: list[Check] = []
    proposed_model = None
    if proposed is not None:
        entry = manifest.models[proposed]
        model = load_model(paths.models, entry)
        proposed_scores = predict_scores(model, features, params.task)
        rows = [features.iloc[[i]] for i in range(min(LATENCY_ROWS, len(features)))]
        checks = [
            check_champion(
                None
                if store is None
                else champion_comparison(params, features, truth, proposed_scores, store),
                gate.max_regression,
                confidence,
            ),
            check_budget(
                "latency_p95",
                p95_latency_ms(
                    lambda row: predict_scores(model, row, params.task),
                    rows,
                    gate.latency_samples,
                ),
                gate.max_latency_p95_ms,
                "ms",
            ),
            check_budget("model_size", entry.bytes / 1e6, gate.max_model_size_mb, "MB"),
            check_sanity(
                {proposed: scores[proposed]},
                len(truth),
                gate.min_holdout_rows,
                class_counts(truth, manifest.classes) if params.is_classification else None,
                gate.min_class_rows,
            ),
        ]
        proposed_model = {
            "role": proposed,
            "kind": entry.kind,
            "file": str(paths.models / entry.file),
            "sha256": entry.sha256,
        }
    report = {
        "primary_metric": primary,
        "confidence": confidence,
        "holdout_rows": len(truth),
        **decide(proposed, comparisons, checks),
        "proposed_model": proposed_model,
        "explanation": explain(proposed, comparisons),
        "inputs": {
            str(path): file_sha256(path)
            for path in (
                paths.models / "manifest.json",
                paths.scores,
                paths.intervals,
                paths.test,
            )
        },
        "warnings": read_json(paths.validation_report).get("warnings", [])
        if paths.validation_report.is_file()
        else [],
    }
    return report


def run_gate(params: Params) -> dict[str, Any]:
    """Stage `gate`: measure every check and write reports/gate.json and reports/gate.md."""
    from {{ cookiecutter.package_name }}.registry import open_store

    report = build_report(params, open_store(params, "gate", must_exist=False))
    write_json(report, params.paths.gate_report)
    write_text(render_markdown(report), params.paths.gate_markdown)
    return report
