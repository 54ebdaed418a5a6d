#!/usr/bin/env bash
# The template's full test suite: fast bakes of every option, then the slow tests that install
# a baked project and run its pipeline, tests and pre-commit. Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ensure-uv.sh
source scripts/ensure-uv.sh
uv sync --locked
uv run ruff check .
uv run ruff format --check .
uv run pytest "$@"
