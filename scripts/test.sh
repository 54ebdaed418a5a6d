#!/usr/bin/env bash
# The template's full test suite: fast bakes of every option, then the slow tests that install
# a baked project and run its pipeline, tests and pre-commit. Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ensure-uv.sh
source scripts/ensure-uv.sh
uv sync --locked
# Named directories: from the root, ruff would also read the generated project's
# pyproject.toml, which is a Jinja template and not TOML until baked.
uv run ruff check hooks ml_template scripts benchmarks tests
uv run ruff format --check hooks ml_template scripts benchmarks tests
uv run pytest "$@"
