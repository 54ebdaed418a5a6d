"""`drift`: has live data moved away from what the model was trained on?

Compares a current batch (a CSV or Parquet file of feature rows, or the service's prediction log,
`.jsonl`) with the training split, per feature and for the predictions, and checks the batch
against the data contract. Writes a JSON summary (what workflows read) and a self-contained HTML
report (what people read), and says in one line which features drifted.

The tests are scipy's, not Evidently's: a two-sample Kolmogorov-Smirnov test for numeric
features and the population stability index (PSI) for categorical ones (and for predicted
classes) cover what this project needs; Evidently would add ~100 MB of dependencies and seconds
of import time to answer the same two questions. A numeric feature drifts when its KS p-value is
below `monitor.p_value` *and* the KS statistic (the largest gap between the two distributions)
is at least `monitor.min_ks`: with 100,000 rows, a p-value alone flags shifts too small to matter.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }}.config import Params
from {{ cookiecutter.package_name }}.errors import PipelineError
from {{ cookiecutter.package_name }}.files import (
    read_frame,
    read_json,
    write_json,
    write_text,
)
from {{ cookiecutter.package_name }}.schema import DataContract, load_contract
from {{ cookiecutter.package_name }}.serving import row_problems

STYLE = (
    "body { font-family: sans-serif; margin: 2em } table { border-collapse: collapse } "
    "td, th { border: 1px solid #ccc; padding: 4px 8px } tr.drift { background: #fdd }"
)
PSI_FLOOR = 1e-4  # share given to a category absent on one side, so PSI stays finite


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
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path), None
    if suffix == ".csv":
        data = params.data
        frame = pd.read_csv(
            path,
            sep=data.csv_separator,
            decimal=data.csv_decimal,
            thousands=data.csv_thousands,
            low_memory=False,
        )
        return frame, None
    raise PipelineError(f"{path}: use a .csv, .parquet or prediction-log .jsonl file.")


def psi(reference: pd.Series, current: pd.Series) -> tuple[float, dict[str, tuple[float, float]]]:
    """Population stability index of two categorical samples, and each value's two shares."""
    ref = reference.dropna().astype(str).value_counts(normalize=True)
    cur = current.dropna().astype(str).value_counts(normalize=True)
    values = sorted(set(ref.index) | set(cur.index))
    expected = np.array([max(ref.get(value, 0.0), PSI_FLOOR) for value in values])
    actual = np.array([max(cur.get(value, 0.0), PSI_FLOOR) for value in values])
    index = float(np.sum((actual - expected) * np.log(actual / expected)))
    shares = {value: (float(ref.get(value, 0.0)), float(cur.get(value, 0.0))) for value in values}
    return index, shares


def numeric_drift(reference: pd.Series, current: pd.Series, params: Params) -> dict[str, Any]:
    from scipy.stats import ks_2samp

    ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=np.float64)
    cur = pd.to_numeric(current, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if len(ref) == 0 or len(cur) == 0:
        return {"test": "ks", "drift": False, "note": "no values on one side"}
    result = ks_2samp(ref, cur)
    settings = params.monitor
    drifted = bool(result.pvalue < settings.p_value and result.statistic >= settings.min_ks)
    return {
        "test": "ks",
        "statistic": round(float(result.statistic), 4),
        "p_value": float(result.pvalue),
        "threshold": f"p < {settings.p_value} and statistic >= {settings.min_ks}",
        "reference_mean": round(float(ref.mean()), 6),
        "current_mean": round(float(cur.mean()), 6),
        "drift": drifted,
    }


def categorical_drift(reference: pd.Series, current: pd.Series, params: Params) -> dict[str, Any]:
    index, shares = psi(reference, current)
    moved = sorted(shares.items(), key=lambda item: -abs(item[1][1] - item[1][0]))[:5]
    return {
        "test": "psi",
        "statistic": round(index, 4),
        "threshold": f"psi >= {params.monitor.psi}",
        "largest_changes": {value: {"reference": r, "current": c} for value, (r, c) in moved},
        "drift": bool(index >= params.monitor.psi),
    }


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


def prediction_drift(
    predictions: pd.Series | None, params: Params, task: str
) -> dict[str, Any] | None:
    """The served predictions against the holdout predictions of the model the gate proposed."""
    if predictions is None:
        return None
    report = read_json(params.paths.gate_report)
    role = (report.get("proposed_model") or {}).get("role")
    holdout = read_frame(params.paths.predictions)
    if role not in holdout.columns and f"{role}_p0" not in holdout.columns:
        return {"drift": False, "note": "no holdout predictions of the proposed model"}
    if task == "regression":
        result = numeric_drift(holdout[role], predictions, params)
    else:
        # Holdout scores are P(positive) (binary) or per-class columns; served values are labels.
        manifest = read_json(params.paths.models / "manifest.json")
        classes = np.array([str(label) for label in manifest["classes"]], dtype=object)
        if task == "binary_classification":
            expected = classes[(holdout[role].to_numpy(dtype=float) >= 0.5).astype(int)]
        else:
            columns = [f"{role}_p{k}" for k in range(len(classes))]
            expected = classes[holdout[columns].to_numpy(dtype=float).argmax(axis=1)]
        result = categorical_drift(pd.Series(expected), predictions.astype(str), params)
    return {"model": role, **result}


def render_html(summary: dict[str, Any]) -> str:
    """A page that opens anywhere: no scripts, no CDN, one table per section."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, dict | list):
            value = json.dumps(value)
        return f"<td>{html.escape(str(value))}</td>"

    rows = "".join(
        f"<tr class={'drift' if item['drift'] else 'ok'}>{cell(name)}{cell(item['kind'])}"
        f"{cell(item['test'])}{cell(item.get('statistic', '-'))}{cell(item.get('p_value', '-'))}"
        f"{cell(item.get('threshold', item.get('note', '')))}"
        f"{cell('DRIFT' if item['drift'] else 'ok')}</tr>"
        for name, item in summary["features"].items()
    )
    verdict = "DRIFT" if summary["drift"] else "no drift"
    quality_rows = "".join(
        f"<tr>{cell(key)}{cell(value)}</tr>" for key, value in summary["quality"].items()
    )
    prediction = summary.get("prediction")
    prediction_html = (
        f"<h2>Predictions</h2><table><tr>{cell(json.dumps(prediction))}</tr></table>"
        if prediction
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report</title>
<style>{STYLE}</style></head>
<body><h1>Drift report: {html.escape(verdict)}</h1>
<p>{html.escape(summary["current"])}: {summary["rows"]} rows against the training split
({summary["reference_rows"]} rows). {summary["drifted_share"]:.0%} of features drifted
(threshold {summary["threshold_share"]:.0%}).</p>
<h2>Features</h2><table><tr><th>feature</th><th>kind</th><th>test</th><th>statistic</th>
<th>p-value</th><th>threshold</th><th>verdict</th></tr>{rows}</table>
{prediction_html}
<h2>Data quality (the contract)</h2><table>{quality_rows}</table>
</body></html>
"""


def run_drift(params: Params, current_path: Path) -> dict[str, Any]:
    contract = load_contract(params.paths.schema_file)
    current, predictions = read_batch(current_path, params)
    if len(current) < params.monitor.min_rows:
        raise PipelineError(
            f"{current_path} has {len(current)} rows; a drift verdict needs at least "
            f"monitor.min_rows ({params.monitor.min_rows}). Collect a larger batch."
        )
    reference = read_frame(params.paths.train)
    features: dict[str, dict[str, Any]] = {}
    for name, rule in contract.features.items():
        if name not in current.columns:
            features[name] = {"kind": rule.kind, "test": "-", "drift": True, "note": "missing"}
            continue
        check = numeric_drift if rule.kind == "numeric" else categorical_drift
        features[name] = {"kind": rule.kind, **check(reference[name], current[name], params)}
    drifted = sorted(name for name, item in features.items() if item["drift"])
    share = len(drifted) / max(len(features), 1)
    prediction = prediction_drift(predictions, params, params.task)
    checked = quality(current, reference, contract, params)
    summary = {
        "current": str(current_path),
        "rows": len(current),
        "reference_rows": len(reference),
        "drifted_features": drifted,
        "drifted_share": share,
        "threshold_share": params.monitor.drift_share,
        "features": features,
        "prediction": prediction,
        "quality": checked,
        "drift": bool(
            share >= params.monitor.drift_share
            or (prediction or {}).get("drift", False)
            or checked["failed"]
        ),
    }
    write_json(json.loads(json.dumps(summary, default=_plain)), params.paths.drift_report)
    write_text(render_html(summary), params.paths.drift_html)
    return summary


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)
