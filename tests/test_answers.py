"""Bad answers are refused before anything is written, by the API and by the command line.

The pre_gen hook is a Jinja template (its answers are rendered into it), so its `problems()`
function is unit-tested by rendering the hook with the default answers and executing it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TEMPLATE, bake_api, cookiecutter_cli, render, resolve_answers
from cookiecutter.exceptions import FailedHookException

# (id, answers given, the answer a line of the error output must name)
BAD_ANSWERS: list[tuple[str, dict[str, str], str]] = [
    (
        "slug-uppercase",
        {"project_slug": "Churn-Model", "package_name": "churn_model"},
        "project_slug",
    ),
    ("slug-spaces", {"project_slug": "churn model", "package_name": "churn_model"}, "project_slug"),
    ("slug-leading-digit", {"project_slug": "1churn", "package_name": "churn"}, "project_slug"),
    ("slug-from-name-with-leading-digit", {"project_name": "2025 Churn"}, "project_slug"),
    ("package-keyword", {"package_name": "class"}, "package_name"),
    ("package-stdlib", {"package_name": "json"}, "package_name"),
    ("package-dependency", {"package_name": "pandas"}, "package_name"),
    ("package-leading-digit", {"package_name": "1abc"}, "package_name"),
    ("package-hyphen", {"package_name": "my-pkg"}, "package_name"),
    ("package-too-long", {"package_name": "a" * 41}, "package_name"),
    ("email-no-at", {"author_email": "you.example.com"}, "author_email"),
    ("email-no-domain-dot", {"author_email": "you@example"}, "author_email"),
    ("email-space", {"author_email": "you @example.com"}, "author_email"),
    ("email-two-ats", {"author_email": "you@@example.com"}, "author_email"),
    ("owner-double-hyphen", {"github_owner": "my--org"}, "github_owner"),
    ("owner-leading-hyphen", {"github_owner": "-org"}, "github_owner"),
    ("s3-with-gs-url", {"dvc_remote": "s3", "dvc_remote_url": "gs://x"}, "dvc_remote_url"),
    (
        "empty-project-name",
        {"project_name": "", "project_slug": "churn-model", "package_name": "churn_model"},
        "project_name",
    ),
]
BAD_IDS = [case[0] for case in BAD_ANSWERS]

# (id, answers given, variable, allowed values): refused by cookiecutter before hooks run.
BAD_CHOICES: list[tuple[str, dict[str, str], str, list[str]]] = [
    ("task", {"task": "clustering"}, "task", ["binary_classification", "multiclass", "regression"]),
    ("python", {"python_version": "3.9"}, "python_version", ["3.11", "3.12", "3.13"]),
]


def _error_lines(output: str, answer: str) -> list[str]:
    return [line for line in output.splitlines() if re.match(rf"ERROR: {answer}\b", line)]


def _assert_nothing_written(output_dir: Path) -> None:
    leftovers = sorted(p.name for p in output_dir.iterdir()) if output_dir.exists() else []
    assert leftovers == [], f"the refused bake left {leftovers} behind"


@pytest.mark.parametrize(("given", "answer"), [case[1:] for case in BAD_ANSWERS], ids=BAD_IDS)
def test_api_refuses_bad_answer(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], given: dict[str, str], answer: str
) -> None:
    with pytest.raises(FailedHookException):
        bake_api(tmp_path, given)
    captured = capfd.readouterr()
    assert _error_lines(captured.err, answer), captured.err
    _assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize(("given", "answer"), [case[1:] for case in BAD_ANSWERS], ids=BAD_IDS)
def test_cli_refuses_bad_answer(tmp_path: Path, given: dict[str, str], answer: str) -> None:
    result = cookiecutter_cli(tmp_path, given)
    assert result.returncode != 0
    assert _error_lines(result.stderr, answer), result.stderr
    assert "Nothing was written" in result.stderr
    _assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize(("given", "variable", "allowed"), [c[1:] for c in BAD_CHOICES])
def test_api_refuses_unknown_choice(
    tmp_path: Path, given: dict[str, str], variable: str, allowed: list[str]
) -> None:
    with pytest.raises(ValueError, match=rf"choice variable {variable}\b") as error:
        bake_api(tmp_path, given)
    assert str(allowed) in str(error.value)
    _assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize(("given", "variable", "allowed"), [c[1:] for c in BAD_CHOICES])
def test_cli_refuses_unknown_choice(
    tmp_path: Path, given: dict[str, str], variable: str, allowed: list[str]
) -> None:
    result = cookiecutter_cli(tmp_path, given)
    assert result.returncode != 0
    assert f"choice variable {variable}" in result.stderr, result.stderr
    assert str(allowed) in result.stderr
    _assert_nothing_written(tmp_path / "out")


# --------------------------------------------------------------------------------------------
# problems() of the pre_gen hook, rendered with the default answers and executed.
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def problems() -> Callable[[dict[str, str]], list[str]]:
    source = (TEMPLATE / "hooks" / "pre_gen_project.py").read_text(encoding="utf-8")
    namespace: dict[str, object] = {"__name__": "pre_gen_project"}
    exec(compile(render(source, resolve_answers()), "pre_gen_project.py", "exec"), namespace)
    return namespace["problems"]  # type: ignore[return-value]


@pytest.fixture(scope="module")
def valid() -> dict[str, str]:
    return resolve_answers()


def test_default_answers_are_valid(problems, valid) -> None:
    assert problems(valid) == []


@pytest.mark.parametrize(
    "change",
    [
        {"project_slug": "a", "package_name": "a"},
        {"project_slug": "churn-model-2", "package_name": "churn_model_2"},
        {"project_slug": "x" * 64, "package_name": "x" * 40},
        {"author_email": "first.last+ml@sub.example.co.uk"},
        {"github_owner": "A"},
        {"github_owner": "a" * 39},
        {"github_owner": "My-Org-9"},
        {"dvc_remote": "s3", "dvc_remote_url": "s3://bucket/path"},
        {"dvc_remote": "gcs", "dvc_remote_url": "gs://bucket/path"},
        {"dvc_remote": "azure", "dvc_remote_url": "azure://container/path"},
        {"dvc_remote": "local", "dvc_remote_url": "/mnt/share/dvc"},
        {"dvc_remote": "none", "dvc_remote_url": ""},
        {"description": 'Ünïcode, "quotes" and O\'Brien & co.'},
        {"task": "regression", "license": "proprietary", "mlflow_tracking": "server"},
    ],
    ids=repr,
)
def test_valid_answers_pass(problems, valid, change: dict[str, str]) -> None:
    assert problems({**valid, **change}) == []


@pytest.mark.parametrize(
    ("change", "answer"),
    [
        *((given, answer) for _, given, answer in BAD_ANSWERS if "project_name" not in given),
        ({"project_slug": "x" * 65}, "project_slug"),
        ({"package_name": "x" * 41}, "package_name"),
        ({"project_slug": "churn--model"}, "project_slug"),
        ({"project_slug": "churn-"}, "project_slug"),
        ({"package_name": "churn__model"}, "package_name"),
        ({"package_name": "tests"}, "package_name"),
        ({"package_name": "Churn"}, "package_name"),
        ({"github_owner": "org-"}, "github_owner"),
        ({"github_owner": "a" * 40}, "github_owner"),
        ({"github_owner": "my_org"}, "github_owner"),
        ({"project_name": ""}, "project_name"),
        ({"description": "   "}, "description"),
        ({"author_name": "two\nlines"}, "author_name"),
        ({"description": "x" * 201}, "description"),
        ({"dvc_remote": "gcs", "dvc_remote_url": "s3://bucket"}, "dvc_remote_url"),
        ({"dvc_remote": "azure", "dvc_remote_url": "azure://"}, "dvc_remote_url"),
        ({"dvc_remote": "s3", "dvc_remote_url": "s3://my bucket/x"}, "dvc_remote_url"),
        ({"dvc_remote": "local", "dvc_remote_url": ""}, "dvc_remote_url"),
        ({"dvc_remote": "local", "dvc_remote_url": "s3://bucket"}, "dvc_remote_url"),
        ({"task": "clustering"}, "task"),
        ({"license": "GPL-3.0"}, "license"),
    ],
    ids=repr,
)
def test_invalid_answers_are_named(problems, valid, change: dict[str, str], answer: str) -> None:
    found = problems({**valid, **change})
    assert found, change
    assert any(message.startswith(f"{answer} ") for message in found), found


def test_every_problem_is_reported_at_once(problems, valid) -> None:
    found = problems({**valid, "author_email": "x", "github_owner": "-x", "package_name": "json"})
    assert [message.split()[0] for message in found] == [
        "package_name",
        "author_email",
        "github_owner",
    ]
