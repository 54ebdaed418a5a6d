"""Shared helpers: bake the template through the cookiecutter API or CLI, never touching $HOME.

Every bake gets a config file whose replay_dir and cookiecutters_dir live in a temporary
directory, so the tests leave nothing behind in the user's home directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.environment import StrictEnvironment
from cookiecutter.generate import generate_context
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import prompt_for_config

TEMPLATE = Path(__file__).resolve().parents[1]
PROJECT_TEMPLATE = TEMPLATE / "{{cookiecutter.project_slug}}"
COOKIECUTTER_JSON = TEMPLATE / "cookiecutter.json"


def questions() -> dict[str, Any]:
    """cookiecutter.json without the private keys (__prompts__ and the like)."""
    raw = json.loads(COOKIECUTTER_JSON.read_text(encoding="utf-8"))
    return {key: value for key, value in raw.items() if not key.startswith("_")}


def choice_questions() -> dict[str, list[str]]:
    """The multiple-choice questions and their allowed values, in cookiecutter.json order."""
    return {key: value for key, value in questions().items() if isinstance(value, list)}


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
    workdir: Path, extra_context: dict[str, str] | None = None
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
            "--no-input",
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
