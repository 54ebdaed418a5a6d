"""Refresh the generated project's uv.lock after changing its dependencies.

One lock serves every answer: the generated pyproject.toml has the same dependencies and
requires-python whatever is chosen, and the only project-specific line of the lock, the
project's own name, is turned back into the cookiecutter variable. The template's tests check
that `uv lock --check` passes on baked projects, so a stale lock fails CI.

It also rewrites the generated `requirements/serving.txt`, the Bento's requirements: the locked
versions of what serving needs, without DVC, MLflow, pandera, Typer or the dev tools (`uv
export --prune` drops a package and whatever only it needed). The file's header records the
command, so a project can regenerate it after changing its own dependencies.

    uv run python scripts/relock.py [--upgrade]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
LOCK = TEMPLATE / "{{cookiecutter.project_slug}}" / "uv.lock"
SLUG = "relock-probe"
PLACEHOLDER = "{{ cookiecutter.project_slug }}"
SERVING = Path("requirements/serving.txt")
# Direct dependencies the prediction service does not import (it needs the model stack only;
# matplotlib draws the model card).
NOT_SERVED = ("dvc", "mlflow", "pandera", "typer", "matplotlib")
SERVING_EXPORT = [
    "uv",
    "export",
    "--frozen",
    "--no-dev",
    "--no-hashes",
    "--no-emit-project",
    "--no-annotate",
    *(option for package in NOT_SERVED for option in ("--prune", package)),
    "--output-file",
    SERVING.as_posix(),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrade", action="store_true", help="allow newer versions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(
            cookiecutter(
                str(TEMPLATE),
                no_input=True,
                output_dir=scratch,
                extra_context={"project_name": SLUG},
                accept_hooks=True,
            )
        )
        if LOCK.exists():
            (project / "uv.lock").write_text(
                LOCK.read_text(encoding="utf-8").replace(PLACEHOLDER, SLUG), encoding="utf-8"
            )
        command = ["uv", "lock", *(["--upgrade"] if args.upgrade else [])]
        subprocess.run(command, cwd=project, check=True)
        locked = (project / "uv.lock").read_text(encoding="utf-8")
        subprocess.run(SERVING_EXPORT, cwd=project, check=True, stdout=subprocess.DEVNULL)
        serving = (project / SERVING).read_text(encoding="utf-8")
    needle = f'name = "{SLUG}"'
    if locked.count(needle) != 1:
        print(f"expected exactly one {needle!r} in the lock", file=sys.stderr)
        return 1
    LOCK.write_text(locked.replace(needle, f'name = "{PLACEHOLDER}"'), encoding="utf-8")
    target = LOCK.parent / SERVING
    target.parent.mkdir(exist_ok=True)
    target.write_text(serving, encoding="utf-8")
    print(f"wrote {LOCK.relative_to(TEMPLATE)} and {target.relative_to(TEMPLATE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
