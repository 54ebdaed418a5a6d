"""`drift`: has live data moved away from what the model was trained on?

Compares a current batch (a CSV or Parquet file of feature rows, or the service's prediction log,
`.jsonl`) with the training split, per feature and for the predictions, and checks the batch
against the data contract. Writes a JSON summary (what workflows read) and a self-contained HTML
report (what people read), and says in one line which features drifted.

The tests are scipy's, not Evidently's: a two-sample Kolmogorov-Smirnov test for numeric
features, and the population stability index (PSI) with a chi-square test for categorical ones
(and for predicted classes), cover what this project needs; Evidently would add ~100 MB of
dependencies and seconds of import time to answer the same questions. Each test needs both an
effect size and significance: KS p-value below `monitor.p_value` *and* KS statistic at least
`monitor.min_ks` (with 100,000 rows a p-value alone flags shifts too small to matter); PSI at
least `monitor.psi` *and* chi-square p-value below `monitor.p_value` (with 100 rows and many
categories, PSI alone is mostly noise). A numeric feature also drifts when at least
`monitor.outside_range` of its values lie outside the range it had in the training data
(schema.yaml `observed`): a few extreme values (a unit change in some rows) barely move the KS
statistic, but a batch of the training distribution has almost none outside its range. Rare
categories share one bin (`category_bins`).

The batch's verdict weighs features by the candidate's importance (plots/importance.csv), so a
shift of one feature the model relies on is caught while a shift of one it ignores is only
listed; and the batch is scored with the local model, so the predictions are compared with the
holdout's even without a prediction log.{% if cookiecutter.monitoring == "yes" %} docs/monitoring.md states every rule.{% endif %}
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }}.core.artifacts import load_manifest
from {{ cookiecutter.package_name }}.core.config import Params
from {{ cookiecutter.package_name }}.core.contract import (
    DataContract,
    Observed,
    load_contract,
)
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.records import (
    DataQuality,
    DriftReport,
    DriftTest,
    FeatureDrift,
    GateReport,
    read_frame,
    read_record,
    write_record,
    write_text,
)
from {{ cookiecutter.package_name }}.core.source import read_file
from {{ cookiecutter.package_name }}.serving.scorer import row_problems

STYLE = (
    "body { font-family: sans-serif; margin: 2em } table { border-collapse: collapse } "
    "td, th { border: 1px solid #ccc; padding: 4px 8px } tr.drift { background: #fdd }"
)
MIN_VALUES = 30  # a categorical with fewer values in the batch is not judged
MIN_EXPECTED = 5  # a category keeps its own bin when the batch should hold this many of it
OTHER = "(other)"  # the bin of rarer categories and of categories new in the batch
SMOOTHING = 0.5  # added to every bin's count on both sides, so PSI stays finite
IMPORTANCE_FILE = "importance.csv"  # in paths.plots, written by evaluate


def read_batch(path: Path, params: Params) -> tuple[pd.DataFrame, pd.Series | None]:
    """The batch's feature rows, and its predictions when it is a prediction log."""
    if not path.is_file():
        raise PipelineError(f"{path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        inputs, predictions = [], []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    inputs.append(entry["inputs"])
                    predictions.append(entry["output"]["prediction"])
                except (json.JSONDecodeError, KeyError, TypeError) as error:
                    raise PipelineError(
                        f"{path}, line {number}: not a prediction-log entry ({error})."
                    ) from None
        return pd.DataFrame.from_records(inputs), pd.Series(predictions, dtype=object)
    # The reader ingest uses (core/source.py): the batch means what the training data meant.
    if suffix in (".parquet", ".pq"):
        return read_file(path, params.data, file_format="parquet"), None
    if suffix == ".csv":
        return read_file(path, params.data, file_format="csv"), None
    raise PipelineError(f"{path}: use a .csv, .parquet or prediction-log .jsonl file.")


class TooFewRowsError(PipelineError):
    """The batch is smaller than `monitor.min_rows`: no verdict (exit code 2, not 1)."""


def category_bins(reference: pd.Series, current: pd.Series) -> pd.DataFrame:
    """Counts per category on both sides; categories too rare to judge merged into one bin.

    A category keeps its own bin when the batch should hold at least MIN_EXPECTED rows of it
    (its training share times the batch's rows); the others, and categories never seen in
    training, share the bin OTHER. So a high-cardinality column is compared on its common values
    and its long tail as a whole, and a new category that takes over still shows (in OTHER).
    """
    ref = reference.dropna().astype(str)
    cur = current.dropna().astype(str)
    shares = ref.value_counts(normalize=True)
    kept = [value for value, share in shares.items() if share * len(cur) >= MIN_EXPECTED]
    counts = pd.DataFrame(
        {
            "reference": ref.where(ref.isin(kept), OTHER).value_counts(),
            "current": cur.where(cur.isin(kept), OTHER).value_counts(),
        }
    ).fillna(0)
    return counts[(counts["reference"] + counts["current"]) > 0]


def psi(counts: pd.DataFrame) -> float:
    """Population stability index of two count columns, with SMOOTHING added to every bin."""
    smoothed = counts.to_numpy(dtype=np.float64) + SMOOTHING
    expected, actual = (smoothed / smoothed.sum(axis=0)).T
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def too_few(current: pd.Series) -> dict[str, Any] | None:
    """A categorical with fewer than MIN_VALUES values in the batch (a nearly empty column) gets
    no verdict: its few values cannot fill two bins, and its missing share is checked anyway."""
    values = int(current.notna().sum())
    if values >= MIN_VALUES:
        return None
    return {
        "drift": False,
        "skipped": True,
        "note": f"{values} values in the batch, fewer than {MIN_VALUES}: not judged",
    }


def numeric_drift(
    reference: pd.Series, current: pd.Series, params: Params, observed: Observed | None = None
) -> dict[str, Any]:
    """KS test of the two samples, and the share of the batch's values outside `observed`
    (the range the feature had in the training data)."""
    from scipy.stats import ks_2samp

    ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=np.float64)
    cur = pd.to_numeric(current, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if len(ref) == 0 or len(cur) == 0:
        return {"test": "ks", "drift": False, "note": "no values on one side"}
    result = ks_2samp(ref, cur)
    settings = params.monitor
    drifted = bool(result.pvalue < settings.p_value and result.statistic >= settings.min_ks)
    found = {
        "test": "ks",
        "statistic": round(float(result.statistic), 4),
        "p_value": float(result.pvalue),
        "threshold": f"p < {settings.p_value} and statistic >= {settings.min_ks}",
        "reference_mean": round(float(ref.mean()), 6),
        "current_mean": round(float(cur.mean()), 6),
    }
    if observed is not None:
        share = float(np.mean((cur < observed.min) | (cur > observed.max)))
        found["outside_range_share"] = round(share, 4)
        found["observed_range"] = [observed.min, observed.max]
        if share >= settings.outside_range:
            drifted = True
            found["note"] = (
                f"{share:.1%} of its values outside the training range "
                f"[{observed.min:g}, {observed.max:g}] (monitor.outside_range "
                f"{settings.outside_range:.0%})"
            )
    return {**found, "drift": drifted}


def categorical_drift(
    reference: pd.Series, current: pd.Series, params: Params, *, skip_few: bool = True
) -> dict[str, Any]:
    from scipy.stats import chi2_contingency

    if reference.notna().sum() == 0 or current.notna().sum() == 0:
        return {"test": "psi", "drift": False, "note": "no values on one side"}
    few = too_few(current) if skip_few else None
    if few:
        return {"test": "psi", **few}
    counts = category_bins(reference, current)
    settings = params.monitor
    threshold = f"psi >= {settings.psi} and chi-square p < {settings.p_value}"
    if len(counts) < 2:
        return {
            "test": "psi",
            "statistic": 0.0,
            "threshold": threshold,
            "note": "one bin: every category is too rare in the batch to compare",
            "drift": False,
        }
    index = psi(counts)
    p_value = float(chi2_contingency(counts.to_numpy(dtype=np.float64).T).pvalue)
    shares = counts / counts.sum(axis=0)
    moved = (shares["current"] - shares["reference"]).abs().sort_values(ascending=False)
    return {
        "test": "psi",
        "statistic": round(index, 4),
        "p_value": p_value,
        "threshold": threshold,
        "bins": len(counts),
        "largest_changes": {
            str(value): {
                "reference": round(float(shares.at[value, "reference"]), 4),
                "current": round(float(shares.at[value, "current"]), 4),
            }
            for value in moved.index[:5]
        },
        "drift": bool(index >= settings.psi and p_value < settings.p_value),
    }


def importance_weights(params: Params, features: list[str]) -> tuple[dict[str, float], str | None]:
    """Each feature's share of the candidate's importance (plots/importance.csv, written by
    evaluate), or equal shares and None when that file is missing or does not cover the
    contract's features (evaluate has not run since they changed)."""
    equal = {name: 1.0 / max(len(features), 1) for name in features}
    path = params.paths.plots / IMPORTANCE_FILE
    if not path.is_file():
        return equal, None
    try:
        frame = pd.read_csv(path)
        values = {
            str(name): float(value)
            for name, value in zip(frame["feature"], frame["importance"], strict=True)
        }
    except (KeyError, ValueError, pd.errors.ParserError):
        return equal, None
    if any(name not in values for name in features):
        return equal, None
    clipped = {
        name: max(values[name], 0.0) if math.isfinite(values[name]) else 0.0 for name in features
    }
    total = sum(clipped.values())
    if total <= 0:
        return equal, None
    return {name: value / total for name, value in clipped.items()}, str(path)


def top_features(weights: dict[str, float], share: float) -> list[str]:
    """The fewest most important features that together carry `share` of the importance."""
    chosen, carried = [], 0.0
    for name, weight in sorted(weights.items(), key=lambda item: -item[1]):
        if carried >= share or weight <= 0:
            break
        chosen.append(name)
        carried += weight
    return chosen


def quality(
    current: pd.DataFrame, reference: pd.DataFrame, contract: DataContract, params: Params
) -> dict[str, Any]:
    """Missing columns, rows that break the contract, and missing values that rose."""
    features = list(contract.features)
    missing_columns = [name for name in features if name not in current.columns]
    present = current[[name for name in features if name in current.columns]]
    problems, _ = row_problems(
        present,
        contract.model_copy(
            update={
                "columns": {
                    name: rule
                    for name, rule in contract.columns.items()
                    if name in present.columns or name == contract.target
                }
            }
        ),
        "warn",
    )
    broken: dict[str, int] = {}
    for problem in problems:
        broken[problem.field] = broken.get(problem.field, 0) + 1
    rose = {}
    for name in present.columns:
        before = float(reference[name].isna().mean()) if name in reference else 0.0
        now = float(present[name].isna().mean())
        if now - before > params.monitor.max_missing_increase:
            rose[name] = {"reference": round(before, 4), "current": round(now, 4)}
    return {
        "missing_columns": missing_columns,
        "rows_breaking_the_contract": len(problems),
        "broken_rules_by_column": broken,
        "examples": [str(problem) for problem in problems[:5]],
        "missing_values_rose": rose,
        "failed": bool(missing_columns or rose)
        or len(problems) > params.monitor.max_broken_share * len(current),
    }


def proposed_role(params: Params) -> str:
    """The model the gate proposed (reports/gate.json), else the candidate."""
    path = params.paths.gate_report
    report = read_record(path, GateReport) if path.is_file() else None
    return report.proposed_model.role if report and report.proposed_model else "candidate"


def score_batch(current: pd.DataFrame, params: Params, role: str) -> pd.Series:
    """The batch's predictions by the local model `role` (models/, as `dvc repro` left it):
    labels for classification, values for regression, as the prediction log holds them."""
    from {{ cookiecutter.package_name }}.core.artifacts import load_manifest, load_model
    from {{ cookiecutter.package_name }}.core.features import prepare_frame
    from {{ cookiecutter.package_name }}.core.metrics import predicted_labels
    from {{ cookiecutter.package_name }}.pipeline.evaluate import predict_scores

    manifest = load_manifest(params.paths.models)
    if role not in manifest.models:
        raise PipelineError(f"{params.paths.models} has no {role} model")
    model = load_model(params.paths.models, manifest.model(role))
    frame = current.reindex(columns=manifest.spec.columns)  # a missing column: all missing
    scores = predict_scores(model, prepare_frame(frame, manifest.spec), params.task)
    if params.task == "regression":
        return pd.Series(scores)
    classes = np.array([str(label) for label in manifest.classes], dtype=object)
    return pd.Series(classes[predicted_labels(scores)], dtype=object)


def prediction_drift(
    current: pd.DataFrame, predictions: pd.Series | None, params: Params
) -> dict[str, Any]:
    """The batch's predictions against the holdout predictions of the same model.

    A prediction log brings the served predictions; any other batch is scored here with the
    model the gate proposed, so the check runs without a log. Not checked (a note, no
    verdict) when the holdout predictions or the model are not on disk.
    """
    task = params.task
    role = proposed_role(params)
    for needed in (params.paths.predictions, params.paths.models / "manifest.json"):
        if not needed.is_file():
            return {"drift": False, "note": f"not checked: {needed} is missing (uv run dvc repro)"}
    holdout = read_frame(params.paths.predictions)
    if role not in holdout.columns and f"{role}_p0" not in holdout.columns:
        return {"drift": False, "note": f"not checked: no holdout predictions of the {role}"}
    source = "prediction log"
    if predictions is None:
        source = f"the {role} model on the batch"
        try:
            predictions = score_batch(current, params, role)
        except PipelineError as error:
            return {"model": role, "drift": False, "note": f"not checked: {error}"}
    if task == "regression":
        result = numeric_drift(holdout[role], predictions, params)
    else:
        # Holdout scores are P(positive) (binary) or per-class columns; compared as labels.
        manifest = load_manifest(params.paths.models)
        classes = np.array([str(label) for label in manifest.classes], dtype=object)
        if task == "binary_classification":
            expected = classes[(holdout[role].to_numpy(dtype=float) >= 0.5).astype(int)]
        else:
            columns = [f"{role}_p{k}" for k in range(len(classes))]
            expected = classes[holdout[columns].to_numpy(dtype=float).argmax(axis=1)]
        result = categorical_drift(
            pd.Series(expected), predictions.astype(str), params, skip_few=False
        )
    return {"model": role, "source": source, **result}


def render_html(report: DriftReport) -> str:
    """A page that opens anywhere: no scripts, no CDN, one table per section."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, dict | list):
            value = json.dumps(value)
        return f"<td>{html.escape(str(value))}</td>"

    top = set(report.importance.top_features)

    def weight(name: str, item: FeatureDrift) -> str:
        return f"{item.weight:.1%}" + (" (top)" if name in top else "")

    def shown(value: float | None) -> Any:
        return "-" if value is None else value

    def table(section: DriftTest | DataQuality) -> str:
        fields = section.model_dump(mode="json", exclude_unset=True)
        return "".join(f"<tr>{cell(key)}{cell(value)}</tr>" for key, value in fields.items())

    rows = "".join(
        f"<tr class={'drift' if item.drift else 'ok'}>{cell(name)}{cell(item.kind)}"
        f"{cell(weight(name, item))}"
        f"{cell(item.test)}{cell(shown(item.statistic))}{cell(shown(item.p_value))}"
        f"{cell(item.note if item.note is not None else item.threshold or '')}"
        f"{cell('DRIFT' if item.drift else 'ok')}</tr>"
        for name, item in report.features.items()
    )
    verdict = "DRIFT" if report.drift else "no drift"
    reasons = "".join(f"<li>{html.escape(reason)}</li>" for reason in report.reasons)
    quality_rows = table(report.quality)
    prediction_rows = table(report.prediction)
    source = report.importance.source or "none found: every feature weighs the same"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report</title>
<style>{STYLE}</style></head>
<body><h1>Drift report: {html.escape(verdict)}</h1>
<p>{html.escape(report.current)}: {report.rows} rows against the training split
({report.reference_rows} rows). Drifted features carry {report.weighted_share:.1%} of the
model's importance (threshold {report.threshold_share:.0%}); {report.drifted_share:.0%} of
features drifted. Importance: {html.escape(source)}.</p>
<ul>{reasons}</ul>
<h2>Features</h2><table><tr><th>feature</th><th>kind</th><th>importance</th><th>test</th>
<th>statistic</th><th>p-value</th><th>threshold</th><th>verdict</th></tr>{rows}</table>
<h2>Predictions</h2><table>{prediction_rows}</table>
<h2>Data quality (the contract)</h2><table>{quality_rows}</table>
</body></html>
"""


def verdict_reasons(
    features: dict[str, dict[str, Any]],
    importance: dict[str, Any],
    weighted: float,
    prediction: dict[str, Any],
    checked: dict[str, Any],
    params: Params,
) -> list[str]:
    """Why the batch drifts, one line per rule that fired (empty: no drift)."""
    reasons = []
    if weighted >= params.monitor.drift_share:
        reasons.append(
            f"drifted features carry {weighted:.0%} of the importance "
            f"(monitor.drift_share {params.monitor.drift_share:.0%})"
        )
    moved = [name for name in importance["top_features"] if features[name]["drift"]]
    if moved:
        reasons.append(
            f"important features drifted: {', '.join(moved)} (among the top features carrying "
            f"monitor.top_importance {params.monitor.top_importance:.0%} of the importance)"
        )
    if prediction.get("drift"):
        reasons.append(f"the predictions drifted ({prediction['source']})")
    if checked["failed"]:
        reasons.append("data quality failed")
    return reasons


def run_drift(params: Params, current_path: Path) -> DriftReport:
    for stale in (params.paths.drift_report, params.paths.drift_html):
        stale.unlink(missing_ok=True)  # a report on disk is always this batch's
    contract = load_contract(params.paths.schema_file)
    current, predictions = read_batch(current_path, params)
    if len(current) < params.monitor.min_rows:
        raise TooFewRowsError(
            f"{current_path} has {len(current)} rows; a drift verdict needs at least "
            f"monitor.min_rows ({params.monitor.min_rows}). Collect a larger batch."
        )
    reference = read_frame(params.paths.train)
    weights, source = importance_weights(params, list(contract.features))
    features: dict[str, dict[str, Any]] = {}
    for name, rule in contract.features.items():
        head = {"kind": rule.kind, "weight": round(weights[name], 4)}
        if name not in current.columns:
            features[name] = {**head, "test": "-", "drift": True, "note": "missing"}
            continue
        if rule.kind == "numeric":
            result = numeric_drift(reference[name], current[name], params, rule.observed)
        else:
            result = categorical_drift(reference[name], current[name], params)
        features[name] = {**head, **result}
    drifted = sorted(name for name, item in features.items() if item["drift"])
    weighted = sum(weights[name] for name in drifted)
    importance = {
        "source": source,
        # Without the model's importance every feature weighs the same and none is "top".
        "top_features": top_features(weights, params.monitor.top_importance) if source else [],
    }
    prediction = prediction_drift(current, predictions, params)
    checked = quality(current, reference, contract, params)
    reasons = verdict_reasons(features, importance, weighted, prediction, checked, params)
    summary = {
        "current": str(current_path),
        "rows": len(current),
        "reference_rows": len(reference),
        "drifted_features": drifted,
        "drifted_share": len(drifted) / max(len(features), 1),
        "weighted_share": round(weighted, 4),
        "threshold_share": params.monitor.drift_share,
        "importance": importance,
        "features": features,
        "prediction": prediction,
        "quality": checked,
        "reasons": reasons,
        "drift": bool(reasons),
    }
    report = DriftReport.model_validate(json.loads(json.dumps(summary, default=_plain)))
    write_record(report, params.paths.drift_report)
    write_text(render_html(report), params.paths.drift_html)
    return report


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)
