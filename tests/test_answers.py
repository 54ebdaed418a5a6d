"""Every answer the template accepts bakes a project that installs; every other is refused.

Refused answers: one `error: <answer> ...` line, exit status 1, nothing in the output directory
and no replay file, through the API and the command line alike. cookiecutter renders the
directory name and creates it before any hook runs, so the check runs earlier, in the Jinja
extension of ml_template (see ml_template/extension.py); its rules (ml_template/answers.py) are
also unit-tested here directly. Hostile answers that are accepted are baked and installed with
`uv sync --locked` by the slow tests at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from email.headerregistry import Address
from pathlib import Path

import pytest
from conftest import (
    TEMPLATE,
    Bake,
    bake_api,
    choice_questions,
    cookiecutter_cli,
    resolve_answers,
    write_config,
)
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

from ml_template import answers as rules
from ml_template.extension import toml_string

S3 = {"dvc_remote": "s3"}
LONG = "x" * 10_000

# (id, answers given, the one answer the single error line must name)
REFUSED: list[tuple[str, dict[str, str], str]] = [
    # Line breaks: `$` in a pattern matches before a final newline, fullmatch does not.
    ("email-trailing-newline", {"author_email": "you@example.com\n"}, "author_email"),
    ("owner-trailing-newline", {**S3, "github_owner": "your-org\n"}, "github_owner"),
    ("slug-trailing-newline", {"project_slug": "churn\n", "package_name": "churn"}, "project_slug"),
    ("package-trailing-newline", {"package_name": "churn_model\n"}, "package_name"),
    ("name-trailing-newline", {"project_name": "Churn Model\n"}, "project_name"),
    ("name-carriage-return", {"project_name": "Churn\rModel"}, "project_name"),
    ("description-line-separator", {"description": "one\u2028two"}, "description"),
    ("description-nul", {"description": "nul\x00byte"}, "description"),
    ("author-next-line", {"author_name": "Zoë\x85O'Brien"}, "author_name"),
    ("author-tab", {"author_name": "Zoë\tO'Brien"}, "author_name"),
    ("author-lone-surrogate", {"author_name": "Zo\udcc3"}, "author_name"),
    # DVC remote URLs end up in .dvc/config (configobj): no new sections, comments or lists.
    (
        "url-newline-injects-a-remote",
        {**S3, "dvc_remote_url": "s3://bucket/p\n['remote \"evil\"']\n    url = s3://evil"},
        "dvc_remote_url",
    ),
    ("url-hash", {**S3, "dvc_remote_url": "s3://bucket/pa#th"}, "dvc_remote_url"),
    ("url-tab", {"dvc_remote": "gcs", "dvc_remote_url": "gs://bucket/pa\tth"}, "dvc_remote_url"),
    ("url-space", {**S3, "dvc_remote_url": "s3://my bucket/x"}, "dvc_remote_url"),
    (
        "url-semicolon",
        {"dvc_remote": "azure", "dvc_remote_url": "azure://container/a;b"},
        "dvc_remote_url",
    ),
    ("url-quote", {**S3, "dvc_remote_url": 's3://bucket/"x"'}, "dvc_remote_url"),
    ("url-comma", {**S3, "dvc_remote_url": "s3://bucket/a,b"}, "dvc_remote_url"),
    ("url-uppercase-bucket", {**S3, "dvc_remote_url": "s3://Bucket/x"}, "dvc_remote_url"),
    ("url-other-scheme", {**S3, "dvc_remote_url": "gs://bucket/x"}, "dvc_remote_url"),
    ("url-scheme-only", {"dvc_remote": "azure", "dvc_remote_url": "azure://"}, "dvc_remote_url"),
    ("url-local-relative", {"dvc_remote": "local", "dvc_remote_url": "dvc"}, "dvc_remote_url"),
    ("url-local-scheme", {"dvc_remote": "local", "dvc_remote_url": "s3://b/x"}, "dvc_remote_url"),
    ("url-local-empty", {"dvc_remote": "local", "dvc_remote_url": ""}, "dvc_remote_url"),
    (
        "url-local-segment-256",
        {"dvc_remote": "local", "dvc_remote_url": "/" + "a" * 256},
        "dvc_remote_url",
    ),
    (
        "url-too-long",
        {"dvc_remote": "local", "dvc_remote_url": "/a" + "/abcdefgh" * 114},
        "dvc_remote_url",
    ),
    ("url-for-no-remote", {"dvc_remote": "none", "dvc_remote_url": "s3://b/x"}, "dvc_remote_url"),
    # Long values: a name becomes a directory name before any hook could look at it.
    ("name-10000", {"project_name": LONG}, "project_name"),
    ("description-10000", {"description": LONG}, "description"),
    ("author-10000", {"author_name": LONG}, "author_name"),
    ("email-10000", {"author_email": LONG + "@example.com"}, "author_email"),
    ("slug-10000", {"project_slug": LONG, "package_name": "churn"}, "project_slug"),
    ("package-10000", {"package_name": LONG}, "package_name"),
    # Paths.
    ("slug-slash", {"project_slug": "a/b"}, "project_slug"),
    ("slug-dot-dot", {"project_slug": "..", "package_name": "churn"}, "project_slug"),
    ("slug-backslash", {"project_slug": "a\\b", "package_name": "churn"}, "project_slug"),
    ("name-without-letters", {"project_name": "😀"}, "project_slug"),
    ("name-blank", {"project_name": "   "}, "project_name"),
    # Emails hatchling cannot write into the package metadata.
    ("email-non-ascii-local-part", {"author_email": "zoë@example.com"}, "author_email"),
    ("email-comma", {"author_email": "a,b@example.com"}, "author_email"),
    ("email-display-name", {"author_email": "You <you@example.com>"}, "author_email"),
    ("email-double-dot", {"author_email": "a..b@example.com"}, "author_email"),
    ("email-local-part-65", {"author_email": "a" * 65 + "@example.com"}, "author_email"),
    ("email-no-at", {"author_email": "you.example.com"}, "author_email"),
    ("email-no-domain-dot", {"author_email": "you@example"}, "author_email"),
    ("email-space", {"author_email": "you @example.com"}, "author_email"),
    ("email-two-ats", {"author_email": "you@@example.com"}, "author_email"),
    # Names that collide with something the project has or installs.
    ("package-tests", {"package_name": "tests"}, "package_name"),
    ("package-conftest", {"package_name": "conftest"}, "package_name"),
    ("package-test-module", {"package_name": "test_cli"}, "package_name"),
    ("package-dependency", {"package_name": "pandas"}, "package_name"),
    ("package-dependency-module", {"package_name": "validate"}, "package_name"),
    ("package-transitive-dependency", {"package_name": "requests"}, "package_name"),
    ("package-windows-device", {"package_name": "con"}, "package_name"),
    ("package-keyword", {"package_name": "class"}, "package_name"),
    ("package-stdlib", {"package_name": "json"}, "package_name"),
    ("package-leading-digit", {"package_name": "1abc"}, "package_name"),
    ("package-hyphen", {"package_name": "my-pkg"}, "package_name"),
    ("package-too-long", {"package_name": "a" * 41}, "package_name"),
    ("slug-dependency", {"project_slug": "pandas", "package_name": "my_pandas"}, "project_slug"),
    ("slug-from-a-dependency-name", {"project_name": "MLflow"}, "project_slug"),
    ("slug-windows-device", {"project_slug": "nul", "package_name": "my_nul"}, "project_slug"),
    ("slug-uppercase", {"project_slug": "Churn-Model", "package_name": "churn"}, "project_slug"),
    ("slug-spaces", {"project_slug": "churn model", "package_name": "churn"}, "project_slug"),
    ("slug-leading-digit", {"project_slug": "1churn", "package_name": "churn"}, "project_slug"),
    ("slug-from-name-with-leading-digit", {"project_name": "2025 Churn"}, "project_slug"),
    ("owner-double-hyphen", {"github_owner": "my--org"}, "github_owner"),
    ("owner-leading-hyphen", {"github_owner": "-org"}, "github_owner"),
    ("empty-project-name", {"project_name": "", "project_slug": "churn"}, "project_name"),
    # Choices given on the command line: cookiecutter itself would stop on a list question
    # with a ValueError traceback, so the choices are text questions checked here.
    ("task-unknown", {"task": "ranking"}, "task"),
    ("python-version-unknown", {"python_version": "3.10"}, "python_version"),
    ("dvc-remote-unknown", {"dvc_remote": "ftp"}, "dvc_remote"),
    ("mlflow-tracking-unknown", {"mlflow_tracking": "databricks"}, "mlflow_tracking"),
    ("deploy-target-unknown", {"deploy_target": "lambda"}, "deploy_target"),
    ("monitoring-unknown", {"monitoring": "true"}, "monitoring"),
    ("license-unknown", {"license": "GPL-3.0"}, "license"),
    ("task-wrong-case", {"task": "Regression"}, "task"),
    ("task-empty", {"task": ""}, "task"),
    # A package the standard library shadows: `test` is not in sys.stdlib_module_names, `cgi`
    # is not in 3.13's but is in the project's 3.11.
    ("name-giving-package-test", {"project_name": "Test"}, "package_name"),
    ("package-stdlib-test", {"package_name": "test"}, "package_name"),
    ("package-stdlib-removed-in-3-13", {"package_name": "cgi"}, "package_name"),
    ("package-stdlib-removed-in-3-12", {"package_name": "distutils"}, "package_name"),
    ("name-giving-a-dependency-package", {"project_name": "Pandera"}, "project_slug"),
    # Spaces around answers that derived defaults were rendered from are refused (the free
    # text and the email are stripped instead, see below).
    ("slug-trailing-space", {"project_slug": "churn ", "package_name": "churn"}, "project_slug"),
    ("package-leading-space", {"package_name": " churn_model"}, "package_name"),
    ("owner-trailing-space", {"github_owner": "your-org "}, "github_owner"),
    ("choice-trailing-space", {"task": "regression "}, "task"),
    ("url-trailing-space", {**S3, "dvc_remote_url": "s3://bucket/x "}, "dvc_remote_url"),
    # Invisible and bidirectional formatting characters, in every kind of answer.
    ("name-right-to-left-override", {"project_name": "Churn \u202eledoM"}, "project_name"),
    ("description-zero-width-space", {"description": "zero\u200bwidth"}, "description"),
    ("author-zero-width-joiner", {"author_name": "Zo\u200dë"}, "author_name"),
    ("author-byte-order-mark", {"author_name": "\ufeffZoë"}, "author_name"),
    ("author-isolate", {"author_name": "Zoë \u2067O'Brien\u2069"}, "author_name"),
    ("email-zero-width-space", {"author_email": "you\u200b@example.com"}, "author_email"),
    ("owner-right-to-left-override", {"github_owner": "your\u202eorg"}, "github_owner"),
    ("slug-zero-width-space", {"project_slug": "churn\u200b", "package_name": "c"}, "project_slug"),
    ("package-byte-order-mark", {"package_name": "\ufeffchurn"}, "package_name"),
    ("choice-zero-width-space", {"task": "regression\u200b"}, "task"),
    ("url-soft-hyphen", {**S3, "dvc_remote_url": "s3://bucket/a\u00adb"}, "dvc_remote_url"),
    ("name-escape", {"project_name": "Churn \x1b[31mModel"}, "project_name"),
]
REFUSED_IDS = [case[0] for case in REFUSED]
# A NUL cannot travel in a command-line argument.
API_ONLY = {"description-nul"}


def _assert_nothing_written(workdir: Path) -> None:
    output = workdir / "out"
    leftovers = sorted(p.name for p in output.iterdir()) if output.exists() else []
    assert leftovers == [], f"the refused bake left {leftovers} behind"
    replay = workdir / "cookiecutter-home" / "replay"
    assert not replay.exists() or not any(replay.iterdir()), "a refused bake wrote a replay file"


def _assert_one_error_line(lines: list[str], answer: str) -> None:
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {answer} "), lines
    assert len(lines[0]) < 400, lines


@pytest.mark.parametrize(("given", "answer"), [case[1:] for case in REFUSED], ids=REFUSED_IDS)
def test_api_refuses_with_one_line(tmp_path: Path, given: dict[str, str], answer: str) -> None:
    with pytest.raises(rules.InvalidAnswers) as error:
        bake_api(tmp_path, given)
    assert isinstance(error.value, FailedHookException)  # what API callers already catch
    _assert_one_error_line(str(error.value).splitlines(), answer)
    _assert_nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("given", "answer"),
    [case[1:] for case in REFUSED if case[0] not in API_ONLY],
    ids=[case[0] for case in REFUSED if case[0] not in API_ONLY],
)
def test_cli_refuses_with_one_line(tmp_path: Path, given: dict[str, str], answer: str) -> None:
    result = cookiecutter_cli(tmp_path, given)
    assert result.returncode == 1, result.stdout + result.stderr
    _assert_one_error_line(result.stdout.splitlines(), answer)
    assert result.stderr == "", result.stderr
    _assert_nothing_written(tmp_path)


def test_cli_reports_every_problem_one_line_each(tmp_path: Path) -> None:
    result = cookiecutter_cli(
        tmp_path, {"author_email": "x", "github_owner": "-x", "package_name": "json"}
    )
    assert result.returncode == 1
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [
        ["error:", "package_name"],
        ["error:", "author_email"],
        ["error:", "github_owner"],
    ]
    _assert_nothing_written(tmp_path)


def test_answers_are_checked_without_hooks(tmp_path: Path) -> None:
    """The check is not a hook: `--accept-hooks no` does not skip it."""
    result = cookiecutter_cli(
        tmp_path, {"project_slug": "a/b"}, options=("--no-input", "--accept-hooks", "no")
    )
    assert result.returncode == 1
    _assert_one_error_line(result.stdout.splitlines(), "project_slug")
    _assert_nothing_written(tmp_path)


def test_interactive_answers_are_checked(tmp_path: Path) -> None:
    """Typed answers are checked as well, after the last question."""
    config = write_config(tmp_path / "cookiecutter-home")
    output = tmp_path / "out"
    command = [sys.executable, "-m", "cookiecutter", "--config-file", str(config)]
    result = subprocess.run(
        [*command, "-o", str(output), str(TEMPLATE)],
        input="Churn Model\n\n\n\n\nnot an email\n" + "\n" * 20,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path / "home"), "COLUMNS": "200"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if "error:" in line]
    assert len(errors) == 1 and "error: author_email 'not an email'" in errors[0], result.stdout
    _assert_nothing_written(tmp_path)


# --------------------------------------------------------------------------------------------
# Choices: text questions whose allowed values are `_choices` of cookiecutter.json, so that an
# unknown value given on the command line reaches the check (a list question would make
# cookiecutter stop first, with its own ValueError and a traceback).
# --------------------------------------------------------------------------------------------
BAD_CHOICES = {"task": "ranking", "python_version": "3.10", "dvc_remote": "ftp"}


@pytest.mark.parametrize(("variable", "value"), BAD_CHOICES.items())
def test_api_refuses_unknown_choice_naming_the_allowed_values(
    tmp_path: Path, variable: str, value: str
) -> None:
    with pytest.raises(rules.InvalidAnswers) as error:
        bake_api(tmp_path, {variable: value})
    allowed = ", ".join(choice_questions()[variable])
    assert (
        str(error.value)
        == f"error: {variable} {value!r} is not supported; choose one of {allowed}."
    )
    _assert_nothing_written(tmp_path)


@pytest.mark.parametrize(("variable", "value"), BAD_CHOICES.items())
def test_cli_refuses_unknown_choice_naming_the_allowed_values(
    tmp_path: Path, variable: str, value: str
) -> None:
    result = cookiecutter_cli(tmp_path, {variable: value})
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == "", result.stderr  # no traceback
    allowed = ", ".join(choice_questions()[variable])
    assert (
        result.stdout == f"error: {variable} {value!r} is not supported; choose one of {allowed}.\n"
    )
    _assert_nothing_written(tmp_path)


def test_an_unknown_choice_typed_at_the_prompt_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path / "cookiecutter-home")
    output = tmp_path / "out"
    command = [sys.executable, "-m", "cookiecutter", "--config-file", str(config)]
    position = list(rules.questions()).index("task")
    result = subprocess.run(
        [*command, "-o", str(output), str(TEMPLATE)],
        input="\n" * position + "ranking\n" + "\n" * 20,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path / "home"), "COLUMNS": "200"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if "error:" in line]
    assert len(errors) == 1 and "error: task 'ranking' is not supported" in errors[0], errors
    _assert_nothing_written(tmp_path)


def test_every_choice_defaults_to_its_first_value(default_answers: dict[str, str]) -> None:
    assert {name: default_answers[name] for name in rules.choices()} == {
        name: values[0] for name, values in rules.choices().items()
    }


def test_every_choice_prompt_names_every_allowed_value() -> None:
    """The prompt is where an interactive user learns the values (there is no menu)."""
    prompts = rules.template_questions()["__prompts__"]
    missing = {
        name: [value for value in values if value not in prompts[name]]
        for name, values in rules.choices().items()
    }
    assert {name: values for name, values in missing.items() if values} == {}


def test_a_choice_given_in_the_user_config_is_checked_too(tmp_path: Path) -> None:
    """cookiecutter only warns about an unknown choice in default_context (and ignores it)."""
    home = tmp_path / "cookiecutter-home"
    config = write_config(home)
    config.write_text(config.read_text() + "default_context:\n  license: GPL-3.0\n")
    with pytest.raises(rules.InvalidAnswers, match=r"^error: license 'GPL-3.0' is not supported"):
        cookiecutter(
            str(TEMPLATE), no_input=True, output_dir=str(tmp_path / "out"), config_file=str(config)
        )


# --------------------------------------------------------------------------------------------
# Package names the standard library or a dependency would shadow.
# --------------------------------------------------------------------------------------------
def test_a_package_name_derived_from_the_project_name_says_which_answer_to_change(
    tmp_path: Path,
) -> None:
    result = cookiecutter_cli(tmp_path, {"project_name": "Test"})
    assert result.returncode == 1
    assert result.stdout == (
        "error: package_name 'test' is a standard-library module, which Python would import "
        "instead of the project's package; it comes from project_name 'Test': choose another "
        "project_name, or give package_name (for example package_name=my_test).\n"
    )
    _assert_nothing_written(tmp_path)


def test_a_package_name_derived_from_the_slug_names_the_slug(valid: dict[str, str]) -> None:
    message = rules.report({**valid, "project_slug": "json", "package_name": "json"})
    assert message == [
        "package_name 'json' is a standard-library module, which Python would import instead "
        "of the project's package; it comes from project_slug 'json': choose another "
        "project_slug, or give package_name (for example package_name=my_json)."
    ]


@pytest.mark.parametrize(
    "name",
    [
        "mlflow",
        "bentoml",
        "sklearn",
        "pandas",
        "numpy",
        "dvc",
        "lightgbm",
        "pandera",
        "typer",
        "pydantic",
        "yaml",
        "skops",
        "scipy",
        "matplotlib",
    ],
)
def test_a_package_name_a_dependency_imports_is_refused(valid: dict[str, str], name: str) -> None:
    found = rules.problems({**valid, "package_name": name})
    assert "would shadow or be shadowed by a library" in found["package_name"], found


@pytest.mark.parametrize("name", ["test", "cgi", "asyncore", "json", "this", "tomllib"])
def test_a_standard_library_package_name_is_refused(valid: dict[str, str], name: str) -> None:
    found = rules.problems({**valid, "package_name": name})
    assert "is a standard-library module" in found["package_name"], found


# --------------------------------------------------------------------------------------------
# Spaces around free text: stripped, so the baked files pass their own whitespace hook.
# --------------------------------------------------------------------------------------------
SPACED = {
    "project_name": "My Model ",
    "description": "  Predicts churn.  ",
    "author_name": "Zoë O'Brien\u00a0",
    "author_email": " you@example.com ",
}


def _lines_with_trailing_whitespace(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # binary
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if line != line.rstrip():
                found.append(f"{path.relative_to(root)}:{number}: {line!r}")
    return found


@pytest.mark.parametrize("interface", ["api", "cli"])
def test_spaces_around_free_text_are_stripped(tmp_path: Path, interface: str) -> None:
    if interface == "api":
        root = bake_api(tmp_path, SPACED).path
    else:
        result = cookiecutter_cli(tmp_path, SPACED)
        assert result.returncode == 0, result.stdout + result.stderr
        root = tmp_path / "out" / "my-model"
    recorded = json.loads((root / ".cookiecutter.json").read_text(encoding="utf-8"))
    assert {name: recorded["cookiecutter"][name] for name in SPACED} == {
        "project_name": "My Model",
        "description": "Predicts churn.",
        "author_name": "Zoë O'Brien",
        "author_email": "you@example.com",
    }
    assert _lines_with_trailing_whitespace(root) == []


def test_the_default_bake_has_no_trailing_whitespace(tmp_path: Path) -> None:
    assert _lines_with_trailing_whitespace(bake_api(tmp_path).path) == []


# --------------------------------------------------------------------------------------------
# Replays: a replay is not prompted, so the extension does not see it; the pre_gen hook does.
# --------------------------------------------------------------------------------------------
def _tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_replays_bake_the_same_project(tmp_path: Path) -> None:
    given = {"project_name": "Replayed 😀", "task": "regression", "dvc_remote": "local"}
    first = bake_api(tmp_path / "first", given)
    home = tmp_path / "first" / "cookiecutter-home"
    replays = list((home / "replay").glob("*.json"))
    assert len(replays) == 1
    recorded = first.path / ".cookiecutter.json"
    for name, replay_file in (("replay-dir", None), ("replay-file", recorded)):
        output = tmp_path / name
        if replay_file is None:
            config = str(home / "cookiecutter-config.yaml")
            cookiecutter(str(TEMPLATE), replay=True, output_dir=str(output), config_file=config)
        else:
            result = cookiecutter_cli(tmp_path / name, options=("--replay-file", str(replay_file)))
            assert result.returncode == 0, result.stdout + result.stderr
            output = tmp_path / name / "out"
        assert _tree(output / first.path.name) == _tree(first.path), name


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ("author_email", "you@example.com\n"),
        ("task", "clustering"),
        ("project_slug", "Churn"),
        ("project_name", "Churn Model "),  # a replay is not stripped: it is refused
        ("author_name", "Zoë\u202e"),
    ],
)
def test_an_edited_replay_file_is_checked_by_the_pre_gen_hook(
    tmp_path: Path, answer: str, value: str
) -> None:
    first = bake_api(tmp_path / "first")
    recorded = json.loads((first.path / ".cookiecutter.json").read_text(encoding="utf-8"))
    recorded["cookiecutter"][answer] = value
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(recorded), encoding="utf-8")
    result = cookiecutter_cli(tmp_path / "replay", options=("--replay-file", str(edited)))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    _assert_one_error_line(errors, answer)
    output = tmp_path / "replay" / "out"
    assert not any(output.iterdir()), sorted(p.name for p in output.iterdir())


# --------------------------------------------------------------------------------------------
# Jinja in answers: cookiecutter renders answers given on the command line or through the API
# as Jinja templates before anything else sees them (upstream behaviour; see the README).
# --------------------------------------------------------------------------------------------
def test_jinja_in_a_given_answer_is_rendered_before_it_is_checked(tmp_path: Path) -> None:
    bake = bake_api(tmp_path, {"description": "Seven times seven is {{ 7*7 }}."})
    pyproject = tomllib.loads((bake.path / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["description"] == "Seven times seven is 49."


def test_broken_jinja_in_a_given_answer_stops_cookiecutter_before_anything_is_written(
    tmp_path: Path,
) -> None:
    """cookiecutter's own error (not one of ours: it fails before the extension runs)."""
    result = cookiecutter_cli(tmp_path, {"description": "a {{ b"})
    assert result.returncode == 1
    assert "TemplateSyntaxError" in result.stderr
    _assert_nothing_written(tmp_path)


# --------------------------------------------------------------------------------------------
# The rules, unit-tested directly.
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def valid() -> dict[str, str]:
    return resolve_answers()


def test_default_answers_are_valid(valid: dict[str, str]) -> None:
    assert rules.problems(valid) == {}


ACCEPTED_EMAILS = [
    "you@example.com",
    "first.last+ml@sub.example.co.uk",
    "o'brien@example.ie",
    "a!#$%&'*+/=?^_`{|}~-z@x-y.example",
    "a" * 64 + "@" + ".".join(["b" * 61] * 3) + ".cd",
]


@pytest.mark.parametrize(
    "change",
    [
        {"project_slug": "a", "package_name": "a"},
        {"project_slug": "churn-model-2", "package_name": "churn_model_2"},
        {"project_slug": "x" * 64, "package_name": "x" * 40},
        {"project_slug": "match", "package_name": "match"},  # a soft keyword is a fine name
        *({"author_email": email} for email in ACCEPTED_EMAILS),
        {"github_owner": "A"},
        {"github_owner": "a" * 39},
        {"github_owner": "My-Org-9"},
        {"dvc_remote": "s3", "dvc_remote_url": "s3://bucket/path"},
        {"dvc_remote": "s3", "dvc_remote_url": "s3://my.bucket-1"},
        {"dvc_remote": "gcs", "dvc_remote_url": "gs://bucket_1/path/"},
        {"dvc_remote": "azure", "dvc_remote_url": "azure://container/path"},
        {"dvc_remote": "local", "dvc_remote_url": "/mnt/share/dvc"},
        {"dvc_remote": "local", "dvc_remote_url": "/srv/dvc+store/a=b/~x@y/v1.2_3"},
        {"dvc_remote": "local", "dvc_remote_url": "/" + "a" * 255},
        {"dvc_remote": "none", "dvc_remote_url": ""},
        {"description": 'Ünïcode, "quotes" and O\'Brien & co.'},
        {"description": "Emoji 😀 👍🏽 ❤️ and right-to-left שלום"},
        {"project_name": "Churn Model", "author_name": "Zoë\u00a0O'Brien"},  # inner no-break space
        {"author_name": "x" * 200},
        {"task": "regression", "license": "proprietary", "mlflow_tracking": "server"},
    ],
    ids=repr,
)
def test_valid_answers_pass(valid: dict[str, str], change: dict[str, str]) -> None:
    assert rules.problems({**valid, **change}) == {}


@pytest.mark.parametrize("email", ACCEPTED_EMAILS)
def test_accepted_emails_are_accepted_by_the_package_metadata_writer(email: str) -> None:
    """hatchling writes Author-email with email.headerregistry.Address, which must not fail."""
    assert Address(display_name="Zoë O'Brien, 😀", addr_spec=email).addr_spec == email


@pytest.mark.parametrize(
    ("change", "answer"),
    [
        *((given, answer) for _, given, answer in REFUSED if list(given) == [answer]),
        ({"project_slug": "x" * 65}, "project_slug"),
        ({"project_slug": "churn--model"}, "project_slug"),
        ({"project_slug": "churn-"}, "project_slug"),
        ({"package_name": "churn__model"}, "package_name"),
        ({"package_name": "Churn"}, "package_name"),
        ({"github_owner": "org-"}, "github_owner"),
        ({"github_owner": "a" * 40}, "github_owner"),
        ({"github_owner": "my_org"}, "github_owner"),
        ({"description": "x" * 201}, "description"),
        ({"dvc_remote": "local", "dvc_remote_url": "/mnt/dvc\n"}, "dvc_remote_url"),
        ({"task": "clustering"}, "task"),
        ({"license": "GPL-3.0"}, "license"),
        ({"task": 3}, "task"),
    ],
    ids=repr,
)
def test_invalid_answers_are_named(valid: dict[str, str], change: dict, answer: str) -> None:
    found = rules.problems({**valid, **change})
    assert list(found) == [answer], found
    assert found[answer].startswith(f"{answer} ")


def test_a_choice_problem_names_the_allowed_values_from_cookiecutter_json(valid) -> None:
    message = rules.problems({**valid, "license": "GPL-3.0"})["license"]
    assert message.endswith(", ".join(choice_questions()["license"]) + ".")


def test_every_problem_is_reported_at_once(valid: dict[str, str]) -> None:
    found = rules.report(
        {**valid, "author_email": "x", "github_owner": "-x", "package_name": "json"}
    )
    assert [message.split()[0] for message in found] == [
        "package_name",
        "author_email",
        "github_owner",
    ]


def test_a_derived_answer_is_reported_only_when_what_it_derives_from_is_valid(valid) -> None:
    """The slug, package and remote URL default to values derived from earlier answers."""
    long = "x" * 300  # its slug and package name are the same 300 letters
    bad_name = {**valid, "project_name": long, "project_slug": long, "package_name": long}
    assert rules.derived(bad_name) >= {"project_slug", "package_name"}
    assert set(rules.problems(bad_name)) == {"project_name", "project_slug", "package_name"}
    assert [m.split()[0] for m in rules.report(bad_name)] == ["project_name"]
    bad_owner = {
        **valid,
        "github_owner": "-org",
        "dvc_remote": "s3",
        "dvc_remote_url": "s3://-org-ml/churn-model",  # what cookiecutter.json derives
    }
    assert set(rules.problems(bad_owner)) == {"github_owner", "dvc_remote_url"}
    assert [m.split()[0] for m in rules.report(bad_owner)] == ["github_owner"]
    # The same slug given explicitly next to a valid name is reported.
    explicit = {**valid, "project_slug": "x" * 300, "package_name": "x"}
    assert [m.split()[0] for m in rules.report(explicit)] == ["project_slug"]


def test_long_values_are_shown_cut_to_one_short_line() -> None:
    text = rules.shown("a\nb" + "c" * 10_000)
    assert "\n" not in text and "(10003 characters)" in text and len(text) < 100


def test_choices_come_from_cookiecutter_json() -> None:
    raw = json.loads((TEMPLATE / "cookiecutter.json").read_text(encoding="utf-8"))
    assert rules.choices() == {key: tuple(value) for key, value in raw["_choices"].items()}
    # In question order, each a text question (a list would bring back cookiecutter's traceback).
    assert list(rules.choices()) == [name for name in rules.questions() if name in rules.choices()]
    assert not [name for name, value in rules.questions().items() if not isinstance(value, str)]


INVISIBLE = ["\u202e", "\u200b", "\u200d", "\ufeff", "\u2066", "\u00ad", "\u0007", "\x1b", "\x7f"]


@pytest.mark.parametrize("character", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("name", list(rules.questions()))
def test_invisible_and_control_characters_are_refused_in_every_answer(
    valid: dict[str, str], name: str, character: str
) -> None:
    answers = {**valid, "dvc_remote": "s3", "dvc_remote_url": "s3://bucket/path"}
    value = answers[name]
    answers[name] = value[:1] + character + value[1:]
    found = rules.problems(answers)
    assert next(iter(found)) == name, found  # a later one may follow (dvc_remote_url's remote)
    assert f"contains U+{ord(character):04X}" in found[name], found[name]


def test_every_free_text_question_has_a_rule() -> None:
    """A new question without a rule would reach the files unchecked."""
    free = [name for name in rules.questions() if name not in rules.choices()]
    assert [name for name in free if name not in rules.CHECKS] == []


def test_the_check_runs_after_every_question() -> None:
    """cookiecutter renders `__` variables in file order: the check must come after the last
    question, or it would run before some answers exist."""
    keys = list(rules.template_questions())
    assert keys.index("__answers_checked") > max(keys.index(name) for name in rules.questions())


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        'quote " and backslash \\',
        "emoji 😀 👩‍👩‍👧",
        "tab\tnewline\nnul\x00del\x7f",
        "\u2028",
    ],
    ids=repr,
)
def test_toml_string_round_trips(text: str) -> None:
    assert tomllib.loads(f"value = {toml_string(text)}\n")["value"] == text


def test_toml_string_writes_characters_outside_the_bmp_as_they_are() -> None:
    assert toml_string("😀") == '"😀"'


# --------------------------------------------------------------------------------------------
# Slow: hostile answers that are accepted bake a project that installs from its lock.
# --------------------------------------------------------------------------------------------
ACCEPTED: dict[str, dict[str, str]] = {
    "unicode-and-jinja": {
        "project_name": "Churn 😀 Model",
        "description": 'Predicts "churn" 😀 \\ O\'Brien & <b>co</b> {braces} # {{ 7*7 }} שלום',
        "author_name": 'Zoë "Z" <O\'Brien>, (team) 👩🏽 💻',
        "author_email": "o'brien+ml@sub.example.co.uk",
        "github_owner": "My-Org",
        "dvc_remote": "s3",
    },
    "longest-allowed": {
        "project_name": "Ł" + "o" * 198 + "😀",
        "project_slug": "s" * 64,
        "package_name": "p" * 40,
        "description": "d" * 199 + "😀",
        "author_name": "a" * 199 + "👩",
        "author_email": ACCEPTED_EMAILS[-1],
        "github_owner": "o" * 39,
        "dvc_remote": "local",
        "dvc_remote_url": "/srv/dvc+store/a=b/~x@y/" + "v" * 255,
    },
}


@pytest.fixture(scope="module")
def shared_environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One virtualenv for every accepted bake: each sync then only swaps the project itself."""
    scratch = tmp_path_factory.mktemp("accepted")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "PYTHONPATH"} and not key.startswith("PYTEST_")
    }
    env.update(
        {"UV_PROJECT_ENVIRONMENT": str(scratch / "venv"), "DVC_NO_ANALYTICS": "1", "NO_COLOR": "1"}
    )
    return env


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=900
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def _installed_metadata(bake: Bake, env: dict[str, str]) -> dict[str, str]:
    script = (
        "import importlib.metadata as m, json, sys; "
        "meta = m.metadata(sys.argv[1]); "
        "print(json.dumps({k: meta[k] for k in ('Name', 'Summary', 'Author-email')}))"
    )
    out = _run(
        ["uv", "run", "--locked", "python", "-c", script, bake.answers["project_slug"]],
        bake.path,
        env,
    )
    return json.loads(out)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ACCEPTED))
def test_accepted_hostile_answers_install_from_the_lock(
    tmp_path: Path, shared_environment: dict[str, str], name: str
) -> None:
    bake = bake_api(tmp_path, ACCEPTED[name])
    _run(["uv", "sync", "--locked", "--all-extras"], bake.path, shared_environment)
    metadata = _installed_metadata(bake, shared_environment)
    assert metadata["Name"] == bake.answers["project_slug"]
    assert metadata["Summary"] == bake.answers["description"]
    author = Address(
        display_name=bake.answers["author_name"], addr_spec=bake.answers["author_email"]
    )
    assert metadata["Author-email"] == str(author)
    remotes = _run(
        ["uv", "run", "--locked", "dvc", "config", "remote.storage.url"],
        bake.path,
        shared_environment,
    )
    assert remotes == bake.answers["dvc_remote_url"] + "\n"


def _top_level_modules(environment: Path) -> set[str]:
    site = next(environment.glob("lib/python3*/site-packages"))
    names = set()
    for path in site.iterdir():
        if path.suffix in {".pth", ".dist-info"} or path.name.endswith((".libs", "__pycache__")):
            continue
        if path.is_dir() or path.suffix in {".py", ".so", ".pyd"}:
            names.add(path.name.split(".")[0])
    return names


@pytest.mark.slow
def test_no_installed_module_can_be_the_package_name(
    tmp_path: Path, shared_environment: dict[str, str]
) -> None:
    """IMPORT_NAMES_OUTSIDE_LOCK is complete: every top-level module the project installs (every
    extra too) is refused as package_name, so the package is never shadowed by a library."""
    bake = bake_api(tmp_path)
    _run(["uv", "sync", "--locked", "--all-extras"], bake.path, shared_environment)
    modules = _top_level_modules(Path(shared_environment["UV_PROJECT_ENVIRONMENT"]))
    candidates = {name for name in modules if rules.PACKAGE.fullmatch(name)} - {
        bake.answers["package_name"]
    }
    assert len(candidates) > 100, candidates  # the listing found the environment's modules
    valid = dict(bake.answers)
    accepted = sorted(
        name
        for name in candidates
        if "package_name" not in rules.problems({**valid, "package_name": name})
    )
    assert not accepted, (
        f"add these to IMPORT_NAMES_OUTSIDE_LOCK in ml_template/answers.py: {accepted}"
    )
