#!/usr/bin/env bash
# Bake the template with its default answers into DIR (default: ./demo) and run the whole local
# loop: install from the lock file, dvc repro, the generated project's tests.
# Usage: bash scripts/demo.sh [DIR]
#
# An earlier demo in DIR (with its MLflow registry) is deleted only after you answer "y" at a
# terminal; without one (CI=true, no terminal on stdin) the script refuses and names another
# directory to use, so a run never destroys what an earlier one left.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ensure-uv.sh
source scripts/ensure-uv.sh
template=$(pwd)
demo_dir=${1:-demo}
project="$demo_dir/churn-model"
if [ -e "$project" ]; then
  if [ -t 0 ] && [ -z "${CI:-}" ]; then
    read -r -p "$project holds an earlier demo (models, metrics, MLflow registry). Delete it? [y/N] " answer
    case "$answer" in
      y | Y | yes) rm -rf "$project" ;;
      *)
        echo "Kept $project. Another directory: bash scripts/demo.sh demo-2" >&2
        exit 1
        ;;
    esac
  else
    echo "error: $project holds an earlier demo (and its MLflow registry); delete it yourself, or use another directory: bash scripts/demo.sh demo-2" >&2
    exit 1
  fi
fi
uv sync --locked --quiet
uv run cookiecutter "$template" --no-input --output-dir "$demo_dir"
cd "$project"
git init --quiet
git add -A
git -c user.name=demo -c user.email=demo@example.invalid commit --quiet -m "Bake ml-template"
uv sync --locked --compile-bytecode
uv run dvc repro
uv run pytest -q
echo
uv run churn_model metrics
echo
# The rest of the loop: register the gate's model, make it champion, serve it, score a file, and
# check that file for drift against the training data.
uv run churn_model promote
uv run churn_model promote --to champion
uv run churn_model export --alias champion
uv run python -c "import pandas as pd; pd.read_parquet('data/processed/test.parquet').drop(columns=['target']).to_csv('holdout.csv', index=False)"
uv run churn_model predict --input holdout.csv --output scored.csv
uv run churn_model drift --current holdout.csv || echo "(drift reported: see reports/drift.html)"
cat <<MSG

The demo project is in $project/. Look at:
  metrics/scores.json, metrics/intervals.json   holdout metrics and 95% bootstrap intervals
  schema.yaml                                    the data contract inferred from the first batch
  reports/gate.md                                the promotion gate: may the candidate replace the baseline?
  plots/                                         'uv run dvc plots show' renders dvc_plots/index.html (needs internet: Vega loads from a CDN)
  mlflow.db                                      'uv run mlflow ui --backend-store-uri sqlite:///mlflow.db'
  docs/model-card.md                             the model card ('uv run mkdocs serve' for the whole docs site)
  scored.csv, reports/drift.html                 batch predictions and the drift report of the holdout
  'make serve'                                  serves the champion at http://localhost:3000 (docs/serving.md)
  docs/github.md                                 what CI and retraining need on GitHub
MSG
