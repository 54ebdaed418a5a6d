#!/usr/bin/env bash
# Bake the template with its default answers into ./demo and run the whole local loop:
# install from the lock file, dvc repro, the generated project's tests. Usage: bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ensure-uv.sh
source scripts/ensure-uv.sh
template=$(pwd)
uv sync --locked --quiet
rm -rf demo
uv run cookiecutter "$template" --no-input --output-dir demo
cd demo/churn-model
git init --quiet
git add -A
git -c user.name=demo -c user.email=demo@example.invalid commit --quiet -m "Bake ml-template"
uv sync --locked
uv run dvc repro
uv run pytest -q
echo
uv run churn_model metrics
cat <<MSG

The demo project is in demo/churn-model/. Look at:
  metrics/scores.json, metrics/intervals.json   holdout metrics and 95% bootstrap intervals
  schema.yaml                                    the data contract inferred from the first batch
  reports/gate.md                                the promotion gate: may the candidate replace the baseline?
  plots/                                         'uv run dvc plots show' renders dvc_plots/index.html
  mlflow.db                                      'uv run mlflow ui --backend-store-uri sqlite:///mlflow.db'
MSG
