"""The whole pipeline on a large CSV against one plain Python process doing the same work.

    uv run python benchmarks/scale.py [--rows 2330000] [--project DIR] [--keep DIR]

Bakes the defaults (or uses --project, an installed bake), writes the CSV of
benchmarks/make_big_csv.py (2.33 M rows, ~200 MB by default), points params.yaml at it, and runs
every stage of dvc.yaml in its own process, as `dvc repro` does, printing each one's wall time
and peak RSS. Then, in the same run, the reference of issue 8: one process that reads the file
with pyarrow, fits the same logistic baseline and LightGBM candidate on a 80/20 split, scores the
holdout and bootstraps the AUC of both (1,000 Poisson-weighted resamples, scores sorted once).
Targets: the pipeline within 2x the reference, every stage's peak RSS under 2 GB, evaluation
memory independent of the number of resamples (tests/test_evaluate.py checks that one).
Figures, not a test.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_stages import SOURCE, large_project, measured, parse_arguments

STAGES = (
    ("ingest",),
    ("validate",),
    ("split",),
    ("train",),
    ("evaluate",),
    ("gate", "--write"),
    ("report",),
)
REFERENCE = """
import sys, time
import numpy as np, pyarrow.csv as pv
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from PACKAGE.metrics import metrics_for

frame = pv.read_csv(sys.argv[1]).to_pandas()
y = frame.pop("churned").to_numpy()
numeric = [c for c in frame if frame[c].dtype.kind == "f"]
categorical = [c for c in frame if c not in numeric]
frame[categorical] = frame[categorical].astype(object).where(frame[categorical].notna(), np.nan)
test = np.random.default_rng(0).random(len(frame)) < 0.2
linear = make_pipeline(ColumnTransformer([
    ("n", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
    ("c", make_pipeline(SimpleImputer(strategy="constant", fill_value="_"),
                        OneHotEncoder(handle_unknown="ignore")), categorical)]),
    LogisticRegression(max_iter=1000))
trees = make_pipeline(ColumnTransformer([
    ("c", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                         encoded_missing_value=-1), categorical),
    ("n", "passthrough", numeric)]),
    LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15, verbose=-1))
auc = next(m for m in metrics_for("binary_classification") if m.name == "roc_auc")
truth = y[test]
states = []
for model in (linear, trees):
    model.fit(frame[~test], y[~test])
    states.append(auc.prepare(truth, model.predict_proba(frame[test])[:, 1]))
rng = np.random.default_rng(0)
for _ in range(1000):
    w = rng.poisson(1.0, len(truth)).astype(np.float64)
    for state in states:
        auc.weighted(state, w)
"""


def main() -> None:
    args = parse_arguments(__doc__.splitlines()[0])
    scratch, project, python, package, env = large_project(args, "ml-template-scale-")
    size = (project / SOURCE).stat().st_size / 1e6
    print(f"pipeline on {args.rows} rows ({size:.0f} MB CSV), {os.cpu_count()} cores\n")
    print(f"  {'stage':<14} {'wall s':>7} {'peak RSS MB':>12}")
    total = 0.0
    peaks = []
    for stage in STAGES:
        seconds, peak, _ = measured([python, "-m", package, *stage], project, env)
        total += seconds
        peaks.append(peak)
        print(f"  {' '.join(stage):<14} {seconds:7.2f} {peak:12.0f}")
    code = REFERENCE.replace("PACKAGE", package)
    reference, reference_peak, _ = measured([python, "-c", code, SOURCE], project, env)
    print(f"  {'pipeline':<14} {total:7.2f} {max(peaks):12.0f}")
    print(f"  {'reference':<14} {reference:7.2f} {reference_peak:12.0f}")
    print(
        f"\npipeline / reference: {total / reference:.2f}x (target <= 2x); largest stage peak "
        f"{max(peaks):.0f} MB (target < 2048 MB)"
    )
    if not args.keep and not args.project:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
