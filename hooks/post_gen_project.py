"""Finish the baked project: prune what the chosen options do not use, say what to do next.

Runs with the Python that runs cookiecutter and needs no network and no other tool.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ANSWERS = {
    "package_name": "{{ cookiecutter.package_name }}",
    "project_slug": "{{ cookiecutter.project_slug }}",
    "deploy_target": "{{ cookiecutter.deploy_target }}",
    "monitoring": "{{ cookiecutter.monitoring }}",
    "mlflow_tracking": "{{ cookiecutter.mlflow_tracking }}",
}

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
    ("monitoring", "no", ("docs/monitoring.md",)),
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
        "  uv sync --locked          # install from the lock file\n"
        f"{tracking}"
        "  uv run dvc repro          # ingest, validate, split, train, evaluate\n"
        "  uv run pytest             # the project's own tests\n\n"
        "Initialise git first if you want `dvc metrics diff` and pre-commit: see README.md.\n"
    )


if __name__ == "__main__":
    main()
