"""Shared helpers: bake the template through the cookiecutter API or CLI, never touching $HOME.

Every bake gets a config file whose replay_dir and cookiecutters_dir live in a temporary
directory, so the tests leave nothing behind in the user's home directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cookiecutter.environment import StrictEnvironment
from cookiecutter.generate import generate_context
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import prompt_for_config

from ml_template.answers import (
    COOKIECUTTER_JSON,
    PROJECT_TEMPLATE,
    TEMPLATE_ROOT,
    choices,
    questions,
)

TEMPLATE = TEMPLATE_ROOT
__all__ = ["COOKIECUTTER_JSON", "PROJECT_TEMPLATE", "TEMPLATE", "questions"]


def choice_questions() -> dict[str, list[str]]:
    """The multiple-choice questions and their allowed values, in cookiecutter.json order."""
    return {key: list(values) for key, values in choices().items()}


def resolve_answers(extra_context: dict[str, str] | None = None) -> dict[str, str]:
    """The answers a non-interactive bake with `extra_context` ends up with (derived ones too)."""
    context = generate_context(
        context_file=str(COOKIECUTTER_JSON), extra_context=dict(extra_context or {})
    )
    answers = prompt_for_config(context, no_input=True)
    return {key: value for key, value in answers.items() if not key.startswith("_")}


def render(text: str, answers: dict[str, str]) -> str:
    """Render a template string the way cookiecutter renders file names and hooks."""
    env = StrictEnvironment(context={"cookiecutter": answers}, keep_trailing_newline=True)
    return env.from_string(text).render(cookiecutter=answers)


def write_config(directory: Path) -> Path:
    """A cookiecutter user config that keeps replay files and clones inside `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "cookiecutter-config.yaml"
    config.write_text(
        f"replay_dir: {json.dumps(str(directory / 'replay'))}\n"
        f"cookiecutters_dir: {json.dumps(str(directory / 'cookiecutters'))}\n",
        encoding="utf-8",
    )
    return config


@dataclass(frozen=True)
class Bake:
    """A baked project: where it is and the answers it was baked with (derived ones included)."""

    path: Path
    answers: dict[str, str]
    given: dict[str, str]


def bake_api(workdir: Path, extra_context: dict[str, str] | None = None) -> Bake:
    """Bake through cookiecutter.main.cookiecutter into workdir/out."""
    output_dir = workdir / "out"
    output_dir.mkdir(parents=True, exist_ok=True)
    path = cookiecutter(
        str(TEMPLATE),
        no_input=True,
        extra_context=dict(extra_context or {}),
        output_dir=str(output_dir),
        config_file=str(write_config(workdir / "cookiecutter-home")),
    )
    given = dict(extra_context or {})
    return Bake(Path(path), resolve_answers(given), given)


def cookiecutter_cli(
    workdir: Path,
    extra_context: dict[str, str] | None = None,
    options: tuple[str, ...] = ("--no-input",),
) -> subprocess.CompletedProcess[str]:
    """Run the cookiecutter command line (of this interpreter) with `key=value` answers."""
    output_dir = workdir / "out"
    output_dir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir / "cookiecutter-home")
    pairs = [f"{key}={value}" for key, value in (extra_context or {}).items()]
    env = {**os.environ, "HOME": str(workdir / "home")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            *options,
            "--config-file",
            str(config),
            "-o",
            str(output_dir),
            str(TEMPLATE),
            *pairs,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def bake_cli(workdir: Path, extra_context: dict[str, str] | None = None) -> Bake:
    result = cookiecutter_cli(workdir, extra_context)
    assert result.returncode == 0, result.stdout + result.stderr
    given = dict(extra_context or {})
    answers = resolve_answers(given)
    return Bake(workdir / "out" / answers["project_slug"], answers, given)


@pytest.fixture(scope="session")
def default_answers() -> dict[str, str]:
    return resolve_answers()


# --------------------------------------------------------------------------------------------
# Installed projects, for the slow tests.
# --------------------------------------------------------------------------------------------
COMMAND_TIMEOUT = 900


def _environment(scratch: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        # The template's own virtualenv and tracking settings must not leak into the project.
        if key not in {"MLFLOW_TRACKING_URI", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH"}
        and not key.startswith(("GIT_", "PYTEST_"))
    }
    env.update(
        {
            "DVC_NO_ANALYTICS": "1",
            "BENTOML_DO_NOT_TRACK": "true",
            "PRE_COMMIT_HOME": str(scratch / "pre-commit-home"),
            "GIT_AUTHOR_NAME": "Template Tests",
            "GIT_AUTHOR_EMAIL": "tests@example.com",
            "GIT_COMMITTER_NAME": "Template Tests",
            "GIT_COMMITTER_EMAIL": "tests@example.com",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(scratch / "gitconfig"),
            "COLUMNS": "120",
            "NO_COLOR": "1",
        }
    )
    return env


class Project:
    """A baked project and a way to run commands in it."""

    def __init__(self, bake: Bake, scratch: Path, venv: Path | None = None) -> None:
        self.path = bake.path
        self.answers = bake.answers
        self.package = bake.answers["package_name"]
        self.env = _environment(scratch)
        if venv is not None:
            self.env["UV_PROJECT_ENVIRONMENT"] = str(venv)

    def executable(self, name: str) -> str:
        """A program of the project's virtual environment (shared between projects, see below)."""
        venv = Path(self.env.get("UV_PROJECT_ENVIRONMENT", self.path / ".venv"))
        return str(venv / "bin" / name)

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            command,
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"`{' '.join(command)}` exited with {result.returncode} in {self.path}\n"
                f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
            )
        return result

    @property
    def stages(self) -> list[str]:
        """The pipeline's stages, in the order of dvc.yaml (which is the order they run in)."""
        dvc = yaml.safe_load((self.path / "dvc.yaml").read_text(encoding="utf-8"))
        return list(dvc["stages"])

    def stages_affected_by(self, param: str) -> list[str]:
        """The stages DVC must rerun when `param` (a dotted params.yaml key) changes.

        Stages whose params include the key or a section above it, then every stage that
        depends on an output of an affected stage, in dvc.yaml order.
        """
        dvc = yaml.safe_load((self.path / "dvc.yaml").read_text(encoding="utf-8"))
        paths = yaml.safe_load((self.path / "params.yaml").read_text(encoding="utf-8"))["paths"]

        def resolve(entry: object) -> str:
            name = next(iter(entry)) if isinstance(entry, dict) else str(entry)
            return re.sub(r"\$\{paths\.(\w+)\}", lambda m: str(paths[m[1]]), name)

        def overlaps(a: str, b: str) -> bool:
            return a == b or a.startswith(b + "/") or b.startswith(a + "/")

        affected: list[str] = []
        changed_outputs: list[str] = []
        for name, stage in dvc["stages"].items():
            keys = [key for key in stage.get("params", []) if isinstance(key, str)]
            hit = any(param == key or param.startswith(key + ".") for key in keys) or any(
                overlaps(resolve(dep), out)
                for dep in stage.get("deps", [])
                for out in changed_outputs
            )
            if hit:
                affected.append(name)
                for kind in ("outs", "metrics", "plots"):
                    changed_outputs += [resolve(out) for out in stage.get(kind, [])]
        return affected

    def repro(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("uv", "run", "dvc", "repro", check=check)

    def tracked_files(self) -> dict[str, bytes]:
        listed = self.run("git", "ls-files", "-z").stdout.split("\0")
        return {name: (self.path / name).read_bytes() for name in listed if name}


def prepare_project(scratch: Path, extra_context: dict[str, str]) -> Project:
    """Bake, install and commit a project.

    Every project of a test session (per xdist worker) shares one virtual environment: the
    locked dependencies are the same for every answer, so only the first project pays for
    installing and compiling them. `uv run` installs the project itself into it before each
    command (projects with different package names coexist there).
    """
    venv = scratch.parent / "shared-venv"
    first = not venv.exists()
    project = Project(bake_api(scratch, extra_context), scratch, venv)
    # This machine sets PYTHONDONTWRITEBYTECODE: compile once here, as the README advises,
    # instead of compiling every library again in every DVC stage.
    project.run("uv", "sync", "--locked", "--inexact", *(["--compile-bytecode"] if first else []))
    project.run("git", "init", "--quiet", "--initial-branch=main")
    project.run("git", "add", "-A")
    project.run("git", "commit", "--quiet", "--no-verify", "-m", "Bake")
    return project


@pytest.fixture(scope="session")
def exported_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The default bake after `dvc repro`, with the gate's model exported into its own BentoML
    store (`.bentoml/`, as `make serve` uses it; BENTOML_HOME is set in `env`). Tests must not
    change it: copy the store (e.g. its `models/`) to serve from a home of their own."""
    scratch = tmp_path_factory.mktemp("exported-project")
    project = prepare_project(scratch, {})
    project.env["BENTOML_HOME"] = str(project.path / ".bentoml")
    project.repro()
    project.run("uv", "run", project.package, "export", "--proposed")
    return project
