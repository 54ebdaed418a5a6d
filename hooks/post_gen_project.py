"""Finish the baked project: prune what the chosen options do not use, say what to do next.

Runs with the Python that runs cookiecutter and needs no network and no other tool.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# Every answer, filled in by the __main__ block (the only part cookiecutter renders), so that
# the tests can import this file as it is.
ANSWERS: dict[str, str] = {}

# (answer, value that makes the paths unnecessary, paths relative to the project root)
PRUNE_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "deploy_target",
        "none",
        (
            ".github/workflows/deploy.yml",
            ".github/workflows/rehearsal.yml",
            ".github/workflows/rollback.yml",
            "deploy",
            "docs/deploy.md",
        ),
    ),
    (
        "monitoring",
        "no",
        (".github/workflows/monitor.yml", "deploy/monitoring", "docs/monitoring.md"),
    ),
)


def paths_to_remove(answers: dict[str, str]) -> list[str]:
    return [
        path
        for answer, unused_when, paths in PRUNE_RULES
        if answers[answer] == unused_when
        for path in paths
    ]


def remove(root: Path, relative: str) -> None:
    target = root / relative
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()


def main() -> None:
    root = Path.cwd()
    for relative in paths_to_remove(ANSWERS):
        remove(root, relative)
    tracking = (
        "  (set MLFLOW_TRACKING_URI to your tracking server first)\n"
        if ANSWERS["mlflow_tracking"] == "server"
        else ""
    )
    print(
        f"\nCreated {ANSWERS['project_slug']}/. Next:\n\n"
        f"  cd {ANSWERS['project_slug']}\n"
        '  git init && git add -A && git commit -m "Start from ml-template"\n'
        "  uv sync --locked --compile-bytecode  # install from the lock file, precompiled\n"
        f"{tracking}"
        "  uv run dvc repro                     # ingest, validate, split, train, evaluate, gate\n"
        "  uv run pytest                        # the project's own tests\n\n"
        "README.md has the rest; docs/github.md lists what CI and retraining need on GitHub.\n"
    )


if __name__ == "__main__":
    ANSWERS.update(json.loads({{cookiecutter | jsonify | tojson}}))  # noqa: F821
    main()
