"""The promotion rule: which model, if any, is proposed, and may it replace the champion?

Baseline first. The gate proposes:

1. the candidate, when it beats the baseline *and* the floor (the dummy model): improvement on
   the primary metric >= min_improvement and the lower bound of the paired bootstrap interval
   > 0, against each;
2. otherwise the baseline, when it beats the floor by the same rule: a simple model that clearly
   beats guessing is a real, deployable model;
3. otherwise nothing.

Whatever is proposed has beaten the floor: a candidate that beats a baseline which is itself
worse than guessing (a time split where the world changed) is not proposed.

The roles and who is compared with whom are defined once, in core/artifacts.py (COMPARISONS,
PROPOSAL_ORDER, CHAMPION_CHECK).

The proposed model must then pass every check of the catalogue below (CHECKS):
not_worse_than_champion (the lower bound of the paired interval of proposed minus champion >
-max_regression; skipped only when there is no champion: a champion that cannot be compared is
a failure that needs a recorded override), latency_p95, model_size, sanity (no NaN metric,
enough holdout rows, enough rows of the rarest class) and data_warnings. Improvements are
oriented so that positive always means "better".

A check is one function registered with `@gate_check(name, Settings)`: it reads the `Evidence`
(the proposed model, its holdout scores, the champion comparison...) and its own settings, the
keys of its `Settings` class in params.yaml's `gate:` section. `build_report` runs every
registered check in order (docs/architecture.md, "Add a gate check").

The comparisons are computed here from the holdout scores evaluate wrote
(reports/predictions.parquet), used only after checking they are the scores of the model files
the manifest lists (SHA-256) on this holdout; never from the metric files. `promote` and
`export --proposed` rebuild this report at the moment they act, so a hand-edited metric or
report cannot change what is promoted. The report records the SHA-256 of the artifact it
judged and the rules it applied (see preconditions.py).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from {{ cookiecutter.package_name }}.core.artifacts import (
    CHAMPION_CHECK,
    COMPARISONS,
    PROPOSAL_ORDER,
    ModelManifest,
    TrainedModel,
)
from {{ cookiecutter.package_name }}.core.config import Params
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.records import (
    GateReport,
    write_record,
    write_text,
)

PASS, FAIL, SKIP, UNMET = "pass", "fail", "skip", "unmet"
LATENCY_ROWS = 50
PKG = "{{ cookiecutter.package_name }}"
OVERRIDE_HINT = (
    f"to make the proposed model champion anyway, record why: `uv run {PKG} promote --to "
    "champion --override --reason '...'`"
)
LATENCY_MEASURE = (
    "CPU time of the calling thread per one-row prediction through the scikit-learn pipeline, "
    "on one thread as served, after a warm-up: a busy machine does not move it (the service's "
    "numpy replica of the pipeline is faster still)"
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
    """Only "no champion" is a skip. A champion that cannot be compared (another split, other
    features, too few rows it never saw) fails: the proposed model may be worse, so making it
    champion needs a recorded override (OVERRIDE_HINT)."""
    name = CHAMPION_CHECK
    threshold = {"max_regression": max_regression}
    if comparison is None:
        return Check(name, SKIP, None, threshold, "no champion in the registry: nothing to compare")
    if "skipped" in comparison or "error" in comparison:
        reason = comparison.get("skipped") or (
            f"champion v{comparison['version']} cannot score this holdout: "
            + _short(comparison["error"])
        )
        return Check(
            name,
            FAIL,
            {"champion_version": comparison["version"], "error": comparison.get("error")},
            threshold,
            f"{reason}; so it is not known whether the proposed model is worse: {OVERRIDE_HINT}",
        )
    lower = comparison["lower"]
    # A share of the champion's value, so that one setting means the same for an AUC of 0.92,
    # an RMSE of 3 MPG and one of 40,000 dollars (a comparison without it: raw units).
    reference = comparison.get("reference")
    margin = max_regression * abs(reference) if reference is not None else max_regression
    metric = comparison.get("metric", "")
    passed = lower > -margin
    allowed = (
        f"{margin:.4g} {metric} ({max_regression:.2%} of the champion's {reference:.4g})"
        if reference is not None
        else f"{margin:.4g}"
    )
    return Check(
        name,
        PASS if passed else FAIL,
        {
            "champion_version": comparison["version"],
            "improvement": comparison["improvement"],
            "ci_lower": lower,
            "ci_upper": comparison["upper"],
            "rows": comparison.get("rows"),
            "champion_value": reference,
            "margin": margin,
        },
        threshold,
        f"vs champion v{comparison['version']}: {comparison['improvement']:+.4g} {metric} "
        f"({_percent(confidence)} CI {lower:+.4g} .. {comparison['upper']:+.4g})"
        + (f", {comparison['note']}" if comparison.get("note") else "")
        + ("" if passed else f": may be worse than the champion by more than {allowed}"),
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
    total_rows: int | None = None,
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
        problems.append(
            f"holdout has {holdout_rows} rows, fewer than {min_rows}"
            + _test_size_hint(min_rows / total_rows if total_rows else None)
        )
    counts = class_counts or {}
    rarest = None
    if counts:
        rarest = min(counts, key=lambda label: counts[label])
        if counts[rarest] < min_class_rows:
            share = counts[rarest] / holdout_rows if holdout_rows else 0.0
            needed = min_class_rows / (share * total_rows) if share and total_rows else None
            problems.append(
                f"the rarest class {rarest!r} has {counts[rarest]} holdout rows, fewer than "
                f"{min_class_rows}" + _test_size_hint(needed)
            )
    summary = f"{holdout_rows} holdout rows"
    if rarest is not None:
        summary += f", rarest class {rarest!r}: {counts[rarest]}"
    return Check(
        "sanity",
        FAIL if problems else PASS,
        {"holdout_rows": holdout_rows, "nan_metrics": nan, "class_counts": class_counts},
        {"min_holdout_rows": min_rows, "min_class_rows": min_class_rows},
        "; ".join(problems) or f"{summary}, no NaN metric",
    )


BLOCKING_WARNINGS = ("leak", "row_order")


def check_data_warnings(
    warnings: list[dict[str, Any]], features: list[str], accepted: list[str]
) -> Check:
    """A feature the validate stage flagged as a one-column leak or as following the row order
    blocks promotion until `gate.accept_warnings` names it: an AUC of 1.000 from a copy of the
    target, or a model whose top feature is the row number, must not ship unquestioned."""
    flagged = sorted(
        {
            str(w.get("column"))
            for w in warnings
            if w.get("kind") in BLOCKING_WARNINGS and w.get("column") in features
        }
    )
    blocking = [column for column in flagged if column not in accepted]
    detail = (
        f"the model uses {', '.join(blocking)}, flagged as a leak or as the row order (see the "
        "data warnings below): list it in data.drop, or, if it is known at prediction time, "
        "in gate.accept_warnings (params.yaml; recorded on the registered version)"
        if blocking
        else (
            f"flagged features accepted in gate.accept_warnings: {', '.join(flagged)}"
            if flagged
            else "no feature is flagged as a leak or as the row order"
        )
    )
    return Check(
        "data_warnings",
        FAIL if blocking else PASS,
        {"flagged": flagged, "blocking": blocking},
        {"accept_warnings": accepted},
        detail,
    )


def _test_size_hint(needed: float | None) -> str:
    """Which split.test_size would give enough rows, when one can (at most half the data)."""
    if needed is None:
        return ": more data or a larger split.test_size"
    if needed <= 0.5:
        return f": split.test_size: {math.ceil(needed * 100) / 100:.2f} would give enough"
    return (
        ": no split.test_size up to 0.5 gives enough; more data, or lower gate.min_holdout_rows "
        "/ gate.min_class_rows (the intervals already show how uncertain a small holdout is)"
    )


def propose(comparisons: list[Check]) -> str | None:
    """The first model of PROPOSAL_ORDER whose comparisons all passed."""
    passed = {check.name for check in comparisons if check.status == PASS}
    return next(
        (model for model, needed in PROPOSAL_ORDER if all(name in passed for name in needed)),
        None,
    )


def decide(proposed: str | None, comparisons: list[Check], checks: list[Check]) -> dict[str, Any]:
    if proposed is None:
        failed = [check.name for check in comparisons if check.status != PASS]
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
    vs_baseline = by_name["beats_baseline"]
    vs_floor = by_name["candidate_beats_floor"]
    baseline = by_name["baseline_beats_floor"].detail
    if proposed == "candidate":
        return f"The candidate is proposed: {vs_baseline.detail}; {vs_floor.detail}."
    why_not = (
        f"it does not clearly beat the floor, although it beats the baseline: {vs_floor.detail}"
        if vs_baseline.status == PASS
        else f"it does not clearly beat the baseline: {vs_baseline.detail}"
    )
    if proposed == "baseline":
        return f"The baseline is proposed: {baseline}. The candidate is not, as {why_not}."
    return (
        f"No model is proposed. The candidate is not, as {why_not}. The baseline does not "
        f"clearly beat the floor: {baseline}. A model no better than the floor (the class prior "
        "or the training mean) is worse than guessing: check the split (a time split where the "
        "data changed?) and the features."
    )


def p95_latency_ms(predict: Any, rows: list[Any], repeats: int) -> float:
    """p95 of the CPU time one-row predictions take on this thread, after a warm-up.

    CPU time, not wall time: on a busy machine a prediction waits for a core, which wall time
    counts and CPU time does not, so the same model passed and failed minutes apart. The model
    must predict on this thread (artifacts.single_threaded), as it does when served.
    """
    for row in rows[:5]:
        predict(row)
    timings = []
    for i in range(repeats):
        start = time.thread_time()
        predict(rows[i % len(rows)])
        timings.append((time.thread_time() - start) * 1000.0)
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
        f"{_percent(report['confidence'])} paired bootstrap intervals."
        + (f" Latency: {report['latency_measure']}." if report.get("latency_measure") else ""),
        "",
        "| check | result | measured | threshold |",
        "|---|---|---|---|",
    ]
    for check in report["checks"]:
        lines.append(
            f"| {check['name']} | {ICONS[check['status']]} | {_short(check['detail'])} | "
            f"`{_compact(check['threshold'])}` |"
        )
    champion = next((c for c in report["checks"] if c["name"] == CHAMPION_CHECK), None)
    if champion and champion["status"] == FAIL and OVERRIDE_HINT in champion["detail"]:
        # The cell above is cut to one line; the way forward must not be.
        lines += ["", f"The champion could not be compared: {OVERRIDE_HINT}."]
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
    params: Params,
    test: pd.DataFrame,
    truth: np.ndarray,
    proposed_scores: np.ndarray,
    classes: list[Any],
    store: Any,
    directory: Path,
) -> dict[str, Any] | None:
    """The gate's comparison with the registry's champion, or None (no champion)."""
    from {{ cookiecutter.package_name }}.promotion.registry import champion_version

    version = champion_version(store)
    if version is None:
        return None
    return compare_with_champion(
        params, store, version, proposed_scores, [], test, truth, classes, directory
    )


def compare_with_champion(
    params: Params,
    store: Any,
    version: int,
    subject_scores: np.ndarray,
    subject_splits: list[dict[str, Any] | None],
    test: pd.DataFrame,
    truth: np.ndarray,
    classes: list[Any],
    directory: Path,
) -> dict[str, Any]:
    """The one champion comparison, used by the gate and by `promote --to champion`: paired
    bootstrap of the subject's holdout scores minus champion `version`'s on the primary metric.

    The champion is loaded from the bytes the gate judged when it was registered (hash checked)
    and scores the holdout with its own features, on the rows that neither its split nor any of
    `subject_splits` (the subject's own, when it is a registered version) trained on. The result
    goes to `check_champion`: an `error` or `skipped` comparison fails there, never passes.
    """
    from {{ cookiecutter.package_name }}.core.errors import PipelineError
    from {{ cookiecutter.package_name }}.promotion.registry import load_registered

    try:
        registered = load_registered(store, version, directory)
    except PipelineError as error:
        return {"version": version, "error": str(error)}
    old_scores, problem = version_scores(params, registered, test, classes)
    if problem is not None:  # first: a column gone from the data is named as such
        return {"version": version, "error": problem}
    assert old_scores is not None  # version_scores gives scores or a problem
    rows, note = rows_unseen(params, [*subject_splits, registered.manifest.split], len(truth))
    if rows is None:
        return {"version": version, "skipped": f"vs champion v{version}: {note}"}
    return {
        **compare_scores(params, version, truth[rows], subject_scores[rows], old_scores[rows]),
        "note": note,
    }


def version_scores(
    params: Params, registered: Any, test: pd.DataFrame, classes: list[Any]
) -> tuple[np.ndarray, None] | tuple[None, str]:
    """What a registered version predicts on the holdout, prepared by its own feature spec;
    or why it cannot (named columns, classes), never a library's dump."""
    from {{ cookiecutter.package_name }}.core.features import prepare_frame
    from {{ cookiecutter.package_name }}.pipeline.evaluate import predict_scores

    manifest, version = registered.manifest, registered.version
    missing = [column for column in manifest.spec.columns if column not in test.columns]
    if missing:
        return None, (
            f"v{version} uses feature columns this holdout does not have: "
            f"{', '.join(missing)} (gone from the data since it was trained; the holdout keeps "
            "the columns of data.drop)"
        )
    if manifest.task != params.task:
        return None, f"v{version} was trained for task {manifest.task}, not {params.task}"
    if params.is_classification and list(manifest.classes) != list(classes):
        return None, (
            f"v{version} predicts the classes {manifest.classes}, this run {list(classes)} (the "
            "target or positive_class changed)"
        )
    try:
        scores = predict_scores(registered.model, prepare_frame(test, manifest.spec), params.task)
    except Exception as error:  # a changed column kind, say: reported, not raised
        return None, f"v{version} cannot predict on it: {type(error).__name__}: {error}"
    return scores, None


def this_runs_scores(
    params: Params, manifest: ModelManifest, sha256: str | None, truth: np.ndarray
) -> np.ndarray | None:
    """The holdout scores evaluate wrote for the model of this run whose file has `sha256` (a
    registered version that is this run's model need not predict again), or None when no model
    of the manifest has it or the predictions do not check out."""
    from {{ cookiecutter.package_name }}.core.artifacts import file_sha256
    from {{ cookiecutter.package_name }}.core.errors import PipelineError
    from {{ cookiecutter.package_name }}.pipeline.evaluate import read_predictions

    role = next((r for r, entry in manifest.models.items() if entry.sha256 == sha256), None)
    if role is None:
        return None
    try:
        return read_predictions(params, manifest, file_sha256(params.paths.test), truth)[role]
    except PipelineError:
        return None


def rows_unseen(
    params: Params, definitions: list[dict[str, Any] | None], n_rows: int
) -> tuple[np.ndarray | None, str]:
    """The current holdout rows that models trained under `definitions` never saw, and a note
    saying which; (None, reason) when that cannot be told or leaves too few rows.

    After data grows or the split changes, a champion may have trained on rows of today's
    holdout; comparing on those would flatter it.
    """
    import pandas as pd

    from {{ cookiecutter.package_name }}.core.records import (
        SplitDefinition,
        read_frame,
        read_record,
    )
    from {{ cookiecutter.package_name }}.pipeline.split import holdout_under

    current = read_record(params.paths.split_report, SplitDefinition)
    rows = np.ones(n_rows, dtype=bool)
    changed = False
    test: pd.DataFrame | None = None
    for definition in definitions:
        if not definition:
            return None, "its split was not recorded, so its training rows are unknown: skipped"
        if definition.get("fingerprint") == current.fingerprint and definition.get("stable", True):
            continue  # the same rule: today's holdout rows were never in its training rows
        changed = True
        if test is None:  # the columns of data.drop included: every key column is there
            test = read_frame(params.paths.test)
        try:
            mask = holdout_under(test, definition)
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


def primary(params: Params) -> Any:
    from {{ cookiecutter.package_name }}.core.metrics import primary_metric

    return primary_metric(params.task, params.evaluate.primary_metric)


def compare_scores(
    params: Params,
    version: int,
    truth: np.ndarray,
    new_scores: np.ndarray,
    old_scores: np.ndarray,
) -> dict[str, Any]:
    """Paired bootstrap of `new_scores` minus `old_scores` (version `version`) on the primary."""
    from {{ cookiecutter.package_name }}.pipeline.evaluate import (
        bootstrap,
        paired_improvement,
    )

    metric = primary(params)
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
    return {
        "version": version,
        "rows": len(truth),
        "metric": metric.name,
        "reference": float(metric.compute(truth, old_scores)),
        **improvement,
    }


def compare_models(params: Params, truth: np.ndarray, scores: dict[str, np.ndarray]) -> list[Check]:
    """The checks of COMPARISONS, computed from the models' holdout scores (paired bootstrap on
    the same resamples evaluate draws, so the numbers are the ones in metrics/intervals.json)."""
    from {{ cookiecutter.package_name }}.pipeline.evaluate import (
        bootstrap,
        paired_improvement,
    )

    metric = primary(params)
    resampled = bootstrap(
        truth,
        scores,
        (metric,),
        samples=params.evaluate.bootstrap_samples,
        seed=params.evaluate.seed,
    )
    points = {name: metric.compute(truth, score) for name, score in scores.items()}
    checks = []
    for comparison in COMPARISONS:
        subject, reference = comparison.subject, comparison.reference
        improvement = paired_improvement(
            metric,
            (points[subject], resampled[subject][metric.name]),
            (points[reference], resampled[reference][metric.name]),
            params.evaluate.confidence,
        )
        checks.append(
            check_improvement(
                comparison.check,
                subject,
                reference,
                improvement,
                params.gate.min_improvement,
                params.evaluate.confidence,
            )
        )
    return checks


def below_the_holdout_mean(truth: np.ndarray, predictions: np.ndarray) -> str:
    """A note when the proposed regression model predicts worse than the holdout's own mean
    (R² < 0): it beat the floor (the *training* mean) only because the level moved, as on a
    time split where the world changed; a reviewer must know that before shipping it."""
    residual = float(np.sum((truth - predictions) ** 2))
    total = float(np.sum((truth - truth.mean()) ** 2))
    if total == 0 or 1.0 - residual / total >= 0:
        return ""
    return (
        f" Note: its R² on the holdout is {1.0 - residual / total:.3f}, below zero: it predicts "
        "worse than the holdout's own mean, and beats the floor (the training mean) only because "
        "the target's level moved between training and holdout rows (a time split?). Check "
        "whether it is useful before promoting it."
    )


# --- The check catalogue: every check of the proposed model, one function each ------------


class CheckSettings(BaseModel):
    """Base of a check's settings: its keys in params.yaml's `gate:` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Evidence:
    """What a check may read about the proposed model, measured once for every check."""

    params: Params
    manifest: ModelManifest
    role: str  # the proposed role (artifacts.PROPOSAL_ORDER)
    entry: TrainedModel  # its manifest entry: kind, file, SHA-256, bytes
    model: Any  # the fitted model, loaded once, predicting on one thread as served
    features: pd.DataFrame  # the holdout's model input
    truth: np.ndarray  # the holdout's truth (class indices or values)
    scores: np.ndarray  # the proposed model's holdout scores (evaluate's predictions)
    champion: dict[str, Any] | None  # compare_with_champion's result; None: no champion
    warnings: list[dict[str, Any]]  # the validate stage's data warnings

    @property
    def confidence(self) -> float:
        return self.params.evaluate.confidence


@dataclass(frozen=True)
class CheckKind:
    name: str  # the check's name in reports/gate.json
    Settings: type[CheckSettings]
    measure: Callable[[Evidence, Any], Check]


CHECKS: dict[str, CheckKind] = {}


def gate_check(
    name: str, settings: type[CheckSettings] = CheckSettings
) -> Callable[[Callable[[Evidence, Any], Check]], Callable[[Evidence, Any], Check]]:
    """Decorator: run `measure(evidence, settings)` on every proposed model, as check `name`,
    with `settings` read from the keys of params.yaml's `gate:` section it declares. A FAIL
    blocks promotion."""

    def register(measure: Callable[[Evidence, Any], Check]) -> Callable[[Evidence, Any], Check]:
        if name in CHECKS:
            raise ValueError(f"gate check {name!r} is registered twice")
        CHECKS[name] = CheckKind(name, settings, measure)
        return measure

    return register


def check_settings(params: Params) -> dict[str, CheckSettings]:
    """Each check's settings from params.yaml's `gate:` section, validated by its own class; a
    key no check declares, or a bad value, is named with its params.yaml key."""
    raw = params.gate.model_dump()
    known = set(type(params.gate).model_fields)
    problems, settings = [], {}
    for kind in CHECKS.values():
        fields = kind.Settings.model_fields
        known |= set(fields)
        try:
            settings[kind.name] = kind.Settings.model_validate(
                {key: value for key, value in raw.items() if key in fields}
            )
        except ValidationError as error:
            for issue in error.errors():
                key = ".".join(["gate", *(str(part) for part in issue["loc"])])
                problems.append(f"  {key}: {issue['msg'].removeprefix('Value error, ')}")
    problems += [
        f"  gate.{key}: no gate check reads it; the catalogue (promotion/gate.py) has the "
        f"settings {', '.join(sorted(known))}"
        for key in raw
        if key not in known
    ]
    if problems:
        raise PipelineError("params.yaml has invalid settings:\n" + "\n".join(problems))
    return settings


class ChampionSettings(CheckSettings):
    # How much worse than the champion it may be (the interval's lower bound), as a share of
    # the champion's value.
    max_regression: float = Field(0.0, ge=0)


@gate_check(CHAMPION_CHECK, ChampionSettings)
def not_worse_than_champion(evidence: Evidence, settings: ChampionSettings) -> Check:
    return check_champion(evidence.champion, settings.max_regression, evidence.confidence)


class LatencySettings(CheckSettings):
    max_latency_p95_ms: float = Field(gt=0)
    latency_samples: int = Field(200, ge=20)


@gate_check("latency_p95", LatencySettings)
def latency_p95(evidence: Evidence, settings: LatencySettings) -> Check:
    from {{ cookiecutter.package_name }}.pipeline.evaluate import predict_scores

    features, task = evidence.features, evidence.params.task
    rows = [features.iloc[[i]] for i in range(min(LATENCY_ROWS, len(features)))]
    measured = p95_latency_ms(
        lambda row: predict_scores(evidence.model, row, task), rows, settings.latency_samples
    )
    return check_budget("latency_p95", measured, settings.max_latency_p95_ms, "ms CPU")


class SizeSettings(CheckSettings):
    max_model_size_mb: float = Field(gt=0)


@gate_check("model_size", SizeSettings)
def model_size(evidence: Evidence, settings: SizeSettings) -> Check:
    return check_budget("model_size", evidence.entry.bytes / 1e6, settings.max_model_size_mb, "MB")


class SanitySettings(CheckSettings):
    min_class_rows: int = Field(5, ge=1)  # classification: holdout rows of the rarest class


@gate_check("sanity", SanitySettings)
def sanity(evidence: Evidence, settings: SanitySettings) -> Check:
    from {{ cookiecutter.package_name }}.core.metrics import metrics_for
    from {{ cookiecutter.package_name }}.pipeline.evaluate import point_scores

    params, manifest, truth = evidence.params, evidence.manifest, evidence.truth
    return check_sanity(
        point_scores(truth, {evidence.role: evidence.scores}, metrics_for(params.task)),
        len(truth),
        params.gate.min_holdout_rows,
        class_counts(truth, manifest.classes) if params.is_classification else None,
        settings.min_class_rows,
        total_rows=len(truth) + manifest.train_rows,
    )


class WarningSettings(CheckSettings):
    # Features flagged as a leak or as the row order that a person has checked and accepts.
    accept_warnings: list[str] = Field(default_factory=list)


@gate_check("data_warnings", WarningSettings)
def data_warnings(evidence: Evidence, settings: WarningSettings) -> Check:
    return check_data_warnings(
        evidence.warnings, evidence.manifest.spec.columns, settings.accept_warnings
    )


def rules(params: Params) -> dict[str, Any]:
    """The settings that decide promotion: recorded in the report and on a registered version."""
    common = params.gate.model_dump(mode="json", include=set(type(params.gate).model_fields))
    for settings in check_settings(params).values():
        common.update(settings.model_dump(mode="json"))
    return {
        "gate": common,
        "primary_metric": params.evaluate.primary_metric,
        "confidence": params.evaluate.confidence,
        "bootstrap_samples": params.evaluate.bootstrap_samples,
        "seed": params.evaluate.seed,
    }


def class_counts(truth: np.ndarray, classes: list[Any]) -> dict[str, int]:
    counts = np.bincount(truth, minlength=len(classes))
    return {str(label): int(count) for label, count in zip(classes, counts, strict=True)}


def build_report(params: Params, store: Any | None) -> dict[str, Any]:
    """Run every check on the holdout scores evaluate wrote for the model files on disk (each
    hashed once; only the proposed model is loaded). `store` is the registry (registry.Store),
    or None without one. The gate stage, `promote` and `export --proposed` all call this, so
    each decides on what the files hold at that moment."""
    from {{ cookiecutter.package_name }}.core.artifacts import (
        file_sha256,
        load_manifest,
        load_model,
        single_threaded,
        verify_model_file,
    )
    from {{ cookiecutter.package_name }}.core.records import (
        ValidationReport,
        read_frame,
        read_record,
    )
    from {{ cookiecutter.package_name }}.pipeline.evaluate import (
        holdout,
        read_predictions,
    )

    paths = params.paths
    settings = check_settings(params)
    warnings = (
        [w.model_dump() for w in read_record(paths.validation_report, ValidationReport).warnings]
        if paths.validation_report.is_file()
        else []
    )
    manifest = load_manifest(paths.models)
    features, truth = holdout(params, manifest)
    test_sha256 = file_sha256(paths.test)
    scores = read_predictions(params, manifest, test_sha256, truth)
    comparisons = compare_models(params, truth, scores)
    proposed = propose(comparisons)
    for role, entry in manifest.models.items():
        if role != proposed:  # the proposed model is checked as it is loaded
            verify_model_file(paths.models, entry)
    checks: list[Check] = []
    proposed_model = None
    if proposed is not None:
        entry = manifest.model(proposed)
        model = single_threaded(load_model(paths.models, entry))
        with tempfile.TemporaryDirectory(prefix="gate-") as scratch:
            champion = (
                None
                if store is None
                else champion_comparison(
                    params,
                    read_frame(paths.test),
                    truth,
                    scores[proposed],
                    manifest.classes,
                    store,
                    Path(scratch),
                )
            )
        evidence = Evidence(
            params=params,
            manifest=manifest,
            role=proposed,
            entry=entry,
            model=model,
            features=features,
            truth=truth,
            scores=scores[proposed],
            champion=champion,
            warnings=warnings,
        )
        checks = [kind.measure(evidence, settings[name]) for name, kind in CHECKS.items()]
        proposed_model = {
            "role": proposed,
            "kind": entry.kind,
            "file": str(paths.models / entry.file),
            "sha256": entry.sha256,
        }
    explanation = explain(proposed, comparisons)
    if proposed is not None and params.task == "regression":
        explanation += below_the_holdout_mean(truth, scores[proposed])
    report = {
        "primary_metric": params.evaluate.primary_metric,
        "confidence": params.evaluate.confidence,
        "holdout_rows": len(truth),
        **decide(proposed, comparisons, checks),
        "proposed_model": proposed_model,
        "explanation": explanation,
        "rules": rules(params),
        "latency_measure": LATENCY_MEASURE,
        "inputs": {
            str(paths.models / "manifest.json"): file_sha256(paths.models / "manifest.json"),
            str(paths.test): test_sha256,
        },
        "warnings": warnings,
    }
    return report


def run_gate(params: Params) -> dict[str, Any]:
    """Stage `gate`: measure every check and write reports/gate.json and reports/gate.md."""
    from {{ cookiecutter.package_name }}.promotion.registry import open_store

    report = build_report(params, open_store(params, "gate", must_exist=False))
    write_record(GateReport.model_validate(report), params.paths.gate_report)
    write_text(render_markdown(report), params.paths.gate_markdown)
    return report
