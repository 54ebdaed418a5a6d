"""The LightGBM candidate's defaults against the old fixed settings on a larger synthetic set.

    uv run python benchmarks/candidate.py [--project DIR] [--rows 50000]

Bakes the defaults (or uses a baked, synced project), then in that project's environment fits
the candidate twice per task (regression and binary classification) on --rows training rows of
a nonlinear synthetic problem (curves, interactions, a ten-level categorical, missing values):
once with params.yaml's defaults (early stopping on an inner split of the training rows) and
once with the old fixed settings (200 trees, 15 leaves, no early stopping), and prints each
one's RMSE or AUC on 20,000 held-out rows, the rounds kept and the fit time. Figures, not a test
(the generated tests/test_models.py checks the same on 5,000 rows).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys, time
import numpy as np, pandas as pd, yaml
from sklearn.metrics import roc_auc_score
from {package}.core.features import FeatureSpec, prepare_frame
from {package}.core.models import create

def make(rows, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    levels = np.array(list("abcdefghij"))
    effect = dict(zip(levels, np.random.default_rng(0).normal(0, 1, 10)))
    group = rng.choice(levels, rows)
    signal = (2 * np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] + np.abs(x[:, 3])
              + np.where(x[:, 4] > 0, x[:, 5], -x[:, 5]) + np.array([effect[g] for g in group]))
    frame = pd.DataFrame(x, columns=[f"x{{i}}" for i in range(6)]).assign(group=group)
    frame.loc[rng.random(rows) < 0.05, "x1"] = np.nan
    return frame, signal + rng.normal(0, 1, rows)

spec = FeatureSpec(tuple(f"x{{i}}" for i in range(6)), ("group",))
defaults = yaml.safe_load(open("params.yaml"))["train"]["candidate"]
defaults.pop("kind")
old = {{**defaults, "n_estimators": 200, "early_stopping_rounds": None, "num_leaves": 15,
       "min_child_samples": 10}}
train, target = make({rows}, 1)
test, truth = make(20000, 2)
for task in ("regression", "binary_classification"):
    y, y_test = (target, truth) if task == "regression" else (
        (target > 1.5).astype(int), (truth > 1.5).astype(int))
    for name, settings in (("old", old), ("defaults", defaults)):
        kind = create("lightgbm", settings)
        start = time.perf_counter()
        model = kind.fit(kind.build(task, spec, 42), prepare_frame(train, spec), y, spec)
        seconds = time.perf_counter() - start
        features = prepare_frame(test, spec)
        if task == "regression":
            score = f"RMSE {{np.sqrt(np.mean((model.predict(features) - y_test) ** 2)):.4f}}"
        else:
            score = f"AUC {{roc_auc_score(y_test, model.predict_proba(features)[:, 1]):.4f}}"
        print(f"{{task:22}} {{name:9}} {{score}}  rounds {{kind.fitted['n_estimators']:5}}"
              f"  fit {{seconds:6.1f}} s", flush=True)
"""


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a baked project with its environment")
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    env = {**os.environ}
    env.pop("VIRTUAL_ENV", None)
    project = args.project
    if project is None:
        from cookiecutter.main import cookiecutter

        scratch = Path(tempfile.mkdtemp(prefix="candidate-bench-"))
        project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(scratch)))
        run(["uv", "sync", "--locked"], project, env)
    answers = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]
    script = SCRIPT.format(package=answers["package_name"], rows=args.rows)
    print(f"{args.rows:,} training rows, 20,000 held out")
    print(run(["uv", "run", "python", "-c", script], project, env), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
