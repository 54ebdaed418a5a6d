"""Bake every option value (pairwise) and check what comes out, file by file.

To add a file to the generated project, add it to EXPECTED_FILES below (and, if an answer
makes it unnecessary, to the hook's PRUNE_RULES and to OPTIONAL_PATHS here). The generated
project's tests/ are compared against the template's own tests/ directory, so they need no entry.
"""

from __future__ import annotations

import configparser
import datetime
import importlib.util
import itertools
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from allpairspy import AllPairs
from conftest import (
    PROJECT_TEMPLATE,
    TEMPLATE,
    Bake,
    bake_api,
    bake_cli,
    choice_questions,
    questions,
    render,
)

# --------------------------------------------------------------------------------------------
# The manifest: every file of a baked project, outside tests/. `{package}` is package_name.
# --------------------------------------------------------------------------------------------
EXPECTED_FILES: tuple[str, ...] = (
    ".cookiecutter.json",
    ".dvc/.gitignore",
    ".dvc/config",
    ".dvcignore",
    ".github/scripts/dvc_remote.py",
    ".github/workflows/ci.yml",
    ".github/workflows/deploy.yml",
    ".github/workflows/monitor.yml",
    ".github/workflows/rehearsal.yml",
    ".github/workflows/rollback.yml",
    ".github/workflows/train.yml",
    ".gitignore",
    ".pre-commit-config.yaml",
    ".python-version",
    "LICENSE",
    "Makefile",
    "README.md",
    "bentofile.yaml",
    "data/external/README.md",
    "deploy/k8s/base/analysis-template.yaml",
    "deploy/k8s/base/hpa.yaml",
    "deploy/k8s/base/kustomization.yaml",
    "deploy/k8s/base/pod-disruption-budget.yaml",
    "deploy/k8s/base/pod-monitor.yaml",
    "deploy/k8s/base/rollout.yaml",
    "deploy/k8s/base/service-canary.yaml",
    "deploy/k8s/base/service-stable.yaml",
    "deploy/k8s/base/service.yaml",
    "deploy/k8s/overlays/production-nginx/ingress.yaml",
    "deploy/k8s/overlays/production-nginx/kustomization.yaml",
    "deploy/k8s/overlays/production/kustomization.yaml",
    "deploy/k8s/overlays/staging/kustomization.yaml",
    "deploy/k8s/rehearsal/broken/kustomization.yaml",
    "deploy/k8s/rehearsal/good/kustomization.yaml",
    "deploy/k8s/rehearsal/load-generator.yaml",
    "deploy/k8s/setup/deployer-role-binding.yaml",
    "deploy/k8s/setup/deployer-role.yaml",
    "deploy/k8s/setup/deployer-service-account.yaml",
    "deploy/k8s/setup/deployer-token.yaml",
    "deploy/monitoring/alerts.yaml",
    "deploy/monitoring/dashboard.json",
    "deploy/release.py",
    "docs/architecture.md",
    "docs/data.md",
    "docs/github.md",
    "docs/index.md",
    "docs/model-card-notes.md",
    "docs/monitoring.md",
    "docs/deploy.md",
    "docs/promotion.md",
    "docs/serving.md",
    "dvc.yaml",
    "mkdocs.yml",
    "params.yaml",
    "pyproject.toml",
    "requirements/serving.txt",
    "src/{package}/__init__.py",
    "src/{package}/__main__.py",
    "src/{package}/cli.py",
    "src/{package}/core/README.md",
    "src/{package}/core/__init__.py",
    "src/{package}/core/artifacts.py",
    "src/{package}/core/config.py",
    "src/{package}/core/contract.py",
    "src/{package}/core/errors.py",
    "src/{package}/core/features.py",
    "src/{package}/core/metrics.py",
    "src/{package}/core/models.py",
    "src/{package}/core/records.py",
    "src/{package}/core/source.py",
    "src/{package}/monitoring/README.md",
    "src/{package}/monitoring/__init__.py",
    "src/{package}/monitoring/drift.py",
    "src/{package}/pipeline/README.md",
    "src/{package}/pipeline/__init__.py",
    "src/{package}/pipeline/data_warnings.py",
    "src/{package}/pipeline/evaluate.py",
    "src/{package}/pipeline/ingest.py",
    "src/{package}/pipeline/plots.py",
    "src/{package}/pipeline/report.py",
    "src/{package}/pipeline/split.py",
    "src/{package}/pipeline/train.py",
    "src/{package}/pipeline/validate.py",
    "src/{package}/promotion/README.md",
    "src/{package}/promotion/__init__.py",
    "src/{package}/promotion/commands.py",
    "src/{package}/promotion/gate.py",
    "src/{package}/promotion/preconditions.py",
    "src/{package}/promotion/registry.py",
    "src/{package}/promotion/tracking.py",
    "src/{package}/serving/README.md",
    "src/{package}/serving/__init__.py",
    "src/{package}/serving/export.py",
    "src/{package}/serving/fastpath.py",
    "src/{package}/serving/predict.py",
    "src/{package}/serving/scorer.py",
    "src/{package}/serving/service.py",
    "uv.lock",
)


def _post_gen_hook() -> ModuleType:
    """hooks/post_gen_project.py as it is: only its __main__ block is rendered by cookiecutter."""
    spec = importlib.util.spec_from_file_location(
        "post_gen_project", TEMPLATE / "hooks" / "post_gen_project.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# PRUNE_RULES of the post_gen hook: (answer, value that removes them, paths). A path is a file
# or a directory (everything under it). Files listed in EXPECTED_FILES under these paths are
# expected only when the answer differs from that value.
OPTIONAL_PATHS: tuple[tuple[str, str, tuple[str, ...]], ...] = _post_gen_hook().PRUNE_RULES

# Files in which literal `{{`/`{%`/`{#` are expected after rendering, with the pattern that
# is stripped before looking for leftover Jinja: GitHub Actions expressions `${{ ... }}`.
GITHUB_EXPRESSION = re.compile(r"\$\{\{[^{}]*\}\}")
# Argo Rollouts fills `{{ args.<name> }}` into analysis queries and conditions.
ARGO_ARGUMENT = re.compile(r"\{\{ args\.[\w-]+ \}\}")
# Grafana fills `{{label}}` into legends.
GRAFANA_LEGEND = re.compile(r"\{\{\w+\}\}")
LITERAL_BRACES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (".github/", GITHUB_EXPRESSION),
    ("deploy/k8s/", ARGO_ARGUMENT),
    ("deploy/monitoring/dashboard.json", GRAFANA_LEGEND),
)
# Opening markers only: closing ones (`}}`) are ordinary in Python code such as nested dicts.
JINJA_MARKERS = ("{{", "{%", "{#")

IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}


def _is_pruned(relative: str, answers: dict[str, str]) -> bool:
    return any(
        answers[answer] == unused_when
        and (relative == path or relative.startswith(path.rstrip("/") + "/"))
        for answer, unused_when, paths in OPTIONAL_PATHS
        for path in paths
    )


def _template_test_files(answers: dict[str, str]) -> set[str]:
    root = PROJECT_TEMPLATE / "tests"
    if not root.is_dir():
        return set()
    return {
        "tests/" + render(path.relative_to(root).as_posix(), answers)
        for path in root.rglob("*")
        if path.is_file() and not IGNORED_PARTS.intersection(path.parts) and path.suffix != ".pyc"
    }


def expected_files(answers: dict[str, str]) -> set[str]:
    files = {path.format(package=answers["package_name"]) for path in EXPECTED_FILES}
    files |= _template_test_files(answers)
    return {path for path in files if not _is_pruned(path, answers)}


def actual_files(project: Path) -> set[str]:
    return {
        path.relative_to(project).as_posix()
        for path in project.rglob("*")
        if path.is_file() and not IGNORED_PARTS.intersection(path.parts)
    }


# --------------------------------------------------------------------------------------------
# The bakes: pairwise over every choice question, plus tricky free text and CLI bakes.
# --------------------------------------------------------------------------------------------
CHOICES = choice_questions()
PAIRWISE: list[dict[str, str]] = [
    dict(zip(CHOICES, combination, strict=True)) for combination in AllPairs(list(CHOICES.values()))
]
NAMES = ("Churn Model", "Fraud Detector 2", "ACME Demand Forecast")

API_BAKES: dict[str, dict[str, str]] = {
    f"pairwise-{index:02d}": {"project_name": NAMES[index % len(NAMES)], **combination}
    for index, combination in enumerate(PAIRWISE)
}
# Quotes, backslashes, apostrophes, ampersands and non-ASCII text in free-text answers must not
# break TOML, JSON or YAML.
API_BAKES["tricky-text"] = {
    "project_name": 'Ünïcode & "Quotes" Model',
    "project_slug": "tricky-model",
    "package_name": "tricky_model",
    "description": 'Predicts 😀 "churn" \\ risk: O\'Brien & Co. <b>x</b> {braces} # not a comment',
    "author_name": "Zoë O'Brien-Łukasiewicz",
    "author_email": "zoe+ml@example.co.uk",
    "github_owner": "Tricky-Org-9",
    "dvc_remote": "s3",
    "dvc_remote_url": "s3://my-bucket/some/path",
}
CLI_BAKES: dict[str, dict[str, str]] = {
    "cli-default": {},
    "cli-regression-gcs": {
        "project_name": "House Prices",
        "task": "regression",
        "dvc_remote": "gcs",
        "deploy_target": "none",
        "monitoring": "no",
        "license": "proprietary",
        "python_version": "3.13",
    },
    "cli-explicit-names": {
        "project_name": "Something Else",
        "project_slug": "cli-custom-slug",
        "package_name": "custom_pkg",
        "dvc_remote": "local",
        "dvc_remote_url": "/srv/dvc/custom",
        "mlflow_tracking": "server",
        "license": "BSD-3-Clause",
    },
}
ALL_BAKES = sorted([*API_BAKES, *CLI_BAKES])

_BAKED: dict[str, Bake] = {}


@pytest.fixture(scope="module")
def bake_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bakes")


@pytest.fixture(params=ALL_BAKES)
def baked(request: pytest.FixtureRequest, bake_workdir: Path) -> Bake:
    """Each bake is made once per test session (per xdist worker) and shared by the checks."""
    name: str = request.param
    if name not in _BAKED:
        workdir = bake_workdir / name
        if name in API_BAKES:
            _BAKED[name] = bake_api(workdir, API_BAKES[name])
        else:
            _BAKED[name] = bake_cli(workdir, CLI_BAKES[name])
    return _BAKED[name]


def _text_files(project: Path) -> dict[str, str]:
    texts = {}
    for relative in sorted(actual_files(project)):
        try:
            texts[relative] = (project / relative).read_text(encoding="utf-8")
        except UnicodeDecodeError:  # binary files cannot hold Jinja
            continue
    return texts


# --------------------------------------------------------------------------------------------
# Checks on the lists above themselves.
# --------------------------------------------------------------------------------------------
def test_pairwise_bakes_cover_every_choice_value() -> None:
    for question, values in CHOICES.items():
        used = {combination[question] for combination in PAIRWISE}
        assert used == set(values), question


def test_pairwise_bakes_cover_every_pair_of_values() -> None:
    names = list(CHOICES)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            seen = {(combination[first], combination[second]) for combination in PAIRWISE}
            wanted = {(a, b) for a in CHOICES[first] for b in CHOICES[second]}
            assert seen == wanted, (first, second, wanted - seen)


def test_manifest_lists_every_template_file(default_answers: dict[str, str]) -> None:
    """Every file in the template directory is in EXPECTED_FILES (or under tests/)."""
    listed = {path.format(package="{{cookiecutter.package_name}}") for path in EXPECTED_FILES}
    in_template = {
        path.relative_to(PROJECT_TEMPLATE).as_posix()
        for path in PROJECT_TEMPLATE.rglob("*")
        if path.is_file() and not IGNORED_PARTS.intersection(path.parts)
    }
    unlisted = {path for path in in_template - listed if not path.startswith("tests/")}
    assert not unlisted, f"add these to EXPECTED_FILES in tests/test_bake.py: {sorted(unlisted)}"
    missing = listed - in_template
    assert not missing, f"listed in EXPECTED_FILES but not in the template: {sorted(missing)}"


def _readme_questions() -> dict[str, tuple[str, str]]:
    """The rows of the README's questions table: question -> (default cell, allowed cell)."""
    text = (TEMPLATE / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## The questions\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and (name := re.fullmatch(r"`(\w+)`", cells[0])):
            rows[name[1]] = (cells[1], cells[2])
    return rows


def test_readme_table_documents_every_question(default_answers: dict[str, str]) -> None:
    """One row per question of cookiecutter.json, in its order, with its default and, for a
    multiple choice, exactly its allowed values (in backticks)."""
    rows = _readme_questions()
    assert list(rows) == list(questions())
    for name, (default, allowed) in rows.items():
        value = default_answers[name]
        assert (f"`{value}`" if value else "empty") in default, (name, default)
        if name in CHOICES:
            assert re.findall(r"`([^`]+)`", allowed) == CHOICES[name], (name, allowed)
        else:
            assert allowed, name


_CHOICE_BAKES: dict[tuple[str, str], dict[str, bytes]] = {}


def _tree_of_bake(workdir: Path, question: str, value: str) -> dict[str, bytes]:
    """Every file of a bake with one choice changed (the record of the answers left out)."""
    given = {} if value == CHOICES[question][0] else {question: value}
    key = next(iter(given.items()), ("", ""))
    if key not in _CHOICE_BAKES:
        bake = bake_api(workdir / f"{key[0]}-{key[1]}", given)
        _CHOICE_BAKES[key] = {
            relative: (bake.path / relative).read_bytes()
            for relative in actual_files(bake.path) - {".cookiecutter.json"}
        }
    return _CHOICE_BAKES[key]


@pytest.mark.parametrize("question", list(CHOICES))
def test_every_value_of_a_choice_changes_the_bake(bake_workdir: Path, question: str) -> None:
    """A value that bakes the same files as another value of its question does nothing."""
    trees = {value: _tree_of_bake(bake_workdir, question, value) for value in CHOICES[question]}
    same = [
        (first, second)
        for first, second in itertools.combinations(CHOICES[question], 2)
        if trees[first] == trees[second]
    ]
    assert not same, f"{question}: these values bake identical projects: {same}"


# --------------------------------------------------------------------------------------------
# Checks on every bake.
# --------------------------------------------------------------------------------------------
def test_exact_file_set(baked: Bake) -> None:
    expected, actual = expected_files(baked.answers), actual_files(baked.path)
    assert not expected - actual, f"missing: {sorted(expected - actual)}"
    assert not actual - expected, f"unexpected: {sorted(actual - expected)}"


def test_no_unrendered_jinja(baked: Bake) -> None:
    leftovers = []
    for relative, text in _text_files(baked.path).items():
        for prefix, allowed in LITERAL_BRACES:
            if relative.startswith(prefix):
                text = allowed.sub("", text)
        for number, line in enumerate(text.splitlines(), start=1):
            if any(marker in line for marker in JINJA_MARKERS):
                leftovers.append(f"{relative}:{number}: {line.strip()}")
    assert not leftovers, "unrendered Jinja:\n" + "\n".join(leftovers)


def _step_ids_generic(expressions: list[str]) -> set[str]:
    """Expressions with step ids made generic: shared macros render them for several steps."""
    return {re.sub(r"steps\.[\w-]+\.", "steps.STEP.", expression) for expression in expressions}


def test_github_expressions_survive_rendering(baked: Bake) -> None:
    """`${{ ... }}` expressions come out verbatim (some only for some answers), none mangled."""
    workflows = PROJECT_TEMPLATE / ".github" / "workflows"
    macros = [path.read_text(encoding="utf-8") for path in (TEMPLATE / "templates").glob("*.j2")]
    for source in sorted(workflows.glob("*.y*ml")):
        if _is_pruned(f".github/workflows/{source.name}", baked.answers):
            continue
        text = source.read_text(encoding="utf-8")
        in_template = _step_ids_generic(GITHUB_EXPRESSION.findall("\n".join([text, *macros])))
        rendered = (baked.path / ".github" / "workflows" / source.name).read_text(encoding="utf-8")
        found = GITHUB_EXPRESSION.findall(rendered)
        assert not _step_ids_generic(found) - in_template, f"{source.name}: not from the template"
        # Every `${{` opens an expression closed on the same line, and some always survive.
        assert rendered.count("${{") == len(found), source.name
        if "${{ github." in text:
            assert "${{ github." in rendered, source.name


PARSERS: dict[str, Callable[[str], object]] = {
    ".yaml": lambda text: list(yaml.safe_load_all(text)),
    ".yml": lambda text: list(yaml.safe_load_all(text)),
    ".toml": tomllib.loads,
    ".lock": tomllib.loads,  # uv.lock is TOML
    ".json": json.loads,
}


def test_structured_files_parse(baked: Bake) -> None:
    parsed = set()
    for relative, text in _text_files(baked.path).items():
        parser = PARSERS.get(Path(relative).suffix)
        if parser is None:
            continue
        try:
            parser(text)
        except Exception as error:  # report which file and why
            pytest.fail(f"{relative} does not parse: {error}")
        parsed.add(relative)
    core = {".cookiecutter.json", "dvc.yaml", "params.yaml", "pyproject.toml", "uv.lock"}
    assert core <= parsed


def test_pyproject_names_the_project_and_its_package(baked: Bake) -> None:
    answers = baked.answers
    pyproject = tomllib.loads((baked.path / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    assert project["name"] == answers["project_slug"]
    assert project["description"] == answers["description"]
    assert project["authors"] == [
        {"name": answers["author_name"], "email": answers["author_email"]}
    ]
    package = answers["package_name"]
    assert project["scripts"] == {package: f"{package}.cli:app"}
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [f"src/{package}"]
    assert (baked.path / "src" / package / "__init__.py").is_file()
    assert [p.name for p in (baked.path / "src").iterdir()] == [package]
    if answers["license"] == "proprietary":
        assert "license" not in project
    else:
        assert project["license"] == answers["license"]
    version = answers["python_version"].replace(".", "")
    assert pyproject["tool"]["ruff"]["target-version"] == f"py{version}"


def test_python_version_file(baked: Bake) -> None:
    text = (baked.path / ".python-version").read_text(encoding="utf-8")
    assert text == baked.answers["python_version"] + "\n"


def _expected_remote_url(answers: dict[str, str]) -> str:
    given = questions()["dvc_remote_url"]
    if not given.startswith("{%"):  # pragma: no cover - the default changed to a plain value
        return answers["dvc_remote_url"]
    owner, slug = answers["github_owner"].lower(), answers["project_slug"]
    return {
        "none": "",
        "local": f"../../{slug}-dvc-storage",
        "s3": f"s3://{owner}-ml/{slug}",
        "gcs": f"gs://{owner}-ml/{slug}",
        "azure": f"azure://{owner}-ml/{slug}",
    }[answers["dvc_remote"]]


def test_dvc_remote(baked: Bake) -> None:
    answers = baked.answers
    config = configparser.ConfigParser()
    config.read_string((baked.path / ".dvc" / "config").read_text(encoding="utf-8"))
    assert config["core"]["analytics"] == "false"
    remotes = [section for section in config.sections() if section.startswith("'remote ")]
    if answers["dvc_remote"] == "none":
        assert remotes == []
        assert "remote" not in config["core"]
        return
    assert remotes == ["'remote \"storage\"'"]
    assert config["core"]["remote"] == "storage"
    url = config[remotes[0]]["url"]
    assert url == answers["dvc_remote_url"]
    # The derived default of cookiecutter.json, unless the bake gave a URL of its own.
    if "dvc_remote_url" not in baked.given:
        assert url == _expected_remote_url(answers)


def test_cloud_remotes_install_their_storage_client_in_ci(baked: Bake) -> None:
    remote = baked.answers["dvc_remote"]
    ci = (baked.path / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    pyproject = tomllib.loads((baked.path / "pyproject.toml").read_text(encoding="utf-8"))
    if remote in ("s3", "gcs", "azure"):
        assert f"uv sync --locked --extra {remote}" in ci
        assert remote in pyproject["project"]["optional-dependencies"]
    else:
        assert "--extra" not in ci


LICENSE_MARKERS = {
    "MIT": "MIT License",
    "Apache-2.0": "Apache License",
    "BSD-3-Clause": "BSD 3-Clause License",
    "proprietary": "All rights reserved.",
}


def test_license_matches_the_choice(baked: Bake) -> None:
    answers = baked.answers
    text = (baked.path / "LICENSE").read_text(encoding="utf-8")
    chosen = answers["license"]
    assert LICENSE_MARKERS[chosen] in text
    for other, marker in LICENSE_MARKERS.items():
        if other != chosen:
            assert marker not in text, f"{chosen} LICENSE also contains {marker!r}"
    if chosen == "Apache-2.0":
        assert "Version 2.0, January 2004" in text
    else:
        year = datetime.datetime.now(datetime.UTC).year
        assert str(year) in text
        assert answers["author_name"] in text
    assert text.strip() and text.endswith("\n")


def test_cookiecutter_json_records_the_answers(baked: Bake) -> None:
    recorded = json.loads((baked.path / ".cookiecutter.json").read_text(encoding="utf-8"))
    assert recorded["cookiecutter"] == baked.answers
    assert set(recorded["cookiecutter"]) == set(questions())
    assert "_template" in recorded


def test_uv_lock_names_the_project_exactly_once(baked: Bake) -> None:
    lock = (baked.path / "uv.lock").read_text(encoding="utf-8")
    slug = baked.answers["project_slug"]
    assert lock.count(f'name = "{slug}"') == 1
    packages = tomllib.loads(lock)["package"]
    editable = [p for p in packages if p.get("source") == {"editable": "."}]
    assert [p["name"] for p in editable] == [slug]


def test_params_and_pipeline_follow_the_answers(baked: Bake) -> None:
    answers = baked.answers
    params = yaml.safe_load((baked.path / "params.yaml").read_text(encoding="utf-8"))
    assert params["task"] == answers["task"]
    assert params["split"]["stratify"] is (answers["task"] != "regression")
    assert params["mlflow"]["experiment"] == answers["project_slug"]
    if answers["mlflow_tracking"] == "local":
        assert params["mlflow"]["tracking_uri"] == "sqlite:///mlflow.db"
    else:
        assert params["mlflow"]["tracking_uri"] is None
    dvc = yaml.safe_load((baked.path / "dvc.yaml").read_text(encoding="utf-8"))
    stages = dvc["stages"]
    core = ["ingest", "validate", "split", "train", "evaluate"]
    assert [name for name in stages if name in core] == core
    package = answers["package_name"]
    for name, stage in stages.items():
        assert stage["cmd"].split()[:2] == [package, name], stage["cmd"]
        for dep in stage.get("deps", []):
            if dep.startswith("src/"):
                assert (baked.path / dep).is_file(), f"stage {name} depends on missing {dep}"


def test_readme_names_the_project(baked: Bake) -> None:
    readme = (baked.path / "README.md").read_text(encoding="utf-8")
    assert baked.answers["project_name"] in readme


def test_text_files_end_with_one_newline(baked: Bake) -> None:
    """pre-commit's end-of-file-fixer would otherwise rewrite a freshly baked project."""
    bad = [
        relative
        for relative, text in _text_files(baked.path).items()
        if text and (not text.endswith("\n") or text.endswith("\n\n"))
    ]
    assert not bad, bad


def test_nothing_written_outside_the_output_and_config_dirs(
    tmp_path: Path, default_answers: dict[str, str]
) -> None:
    bake = bake_api(tmp_path)
    assert bake.path == tmp_path / "out" / default_answers["project_slug"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [bake.path.name]
    replay = tmp_path / "cookiecutter-home" / "replay"
    assert list(replay.glob("*.json")), "the replay file went somewhere else than replay_dir"


@pytest.mark.parametrize("name", ["null", "yes", "true", "off"])
def test_slugs_that_are_yaml_keywords_stay_strings(tmp_path: Path, name: str) -> None:
    """A valid slug such as `null` or `yes` must not turn into None/True in params.yaml."""
    bake = bake_api(tmp_path, {"project_name": name})
    assert bake.answers["project_slug"] == name
    params = yaml.safe_load((bake.path / "params.yaml").read_text(encoding="utf-8"))
    for key in ("experiment", "registered_model"):  # the settings rendered from the slug
        value = params["mlflow"][key]
        assert value == name, f"params.yaml mlflow.{key} is {value!r}, not {name!r}"


def test_python_files_compile(baked: Bake) -> None:
    """Free-text answers (quotes, backslashes) must never break the generated Python."""
    for path in baked.path.rglob("*.py"):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")


def test_longest_allowed_answers_keep_the_generated_code_lint_clean(tmp_path: Path) -> None:
    """Names appear in import lines and texts: at the hook's limits they must still fit."""
    bake = bake_api(
        tmp_path,
        {
            "project_name": "Long " + "n" * 190,
            "project_slug": "long",
            "package_name": "p" * 40,
            "description": 'A "quoted" \\ description, ' + "d" * 170,
            "author_name": "O'Brien " + "a" * 190,
        },
    )
    ruff = Path(sys.executable).parent / "ruff"
    for command in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run(
            [str(ruff), *command], cwd=bake.path, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"ruff {' '.join(command)}:\n{result.stdout}{result.stderr}"


def test_the_local_tracking_store_and_its_side_files_are_git_ignored(tmp_path: Path) -> None:
    """`dvc repro` and `promote` write these beside the SQLite store: the store, the lock that
    serialises alias moves (promotion/registry.py) and SQLite's journals."""
    bake = bake_api(tmp_path)
    subprocess.run(["git", "init", "-q"], cwd=bake.path, check=True)
    written = ["mlflow.db", "mlflow.db.lock", "mlflow.db-journal", "mlflow.db-wal", "mlflow.db-shm"]
    for name in written:
        (bake.path / name).write_text("", encoding="utf-8")
    result = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", *written],
        cwd=bake.path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "", f"not git-ignored:\n{result.stdout}"
    registry = (
        bake.path / "src" / bake.answers["package_name"] / "promotion" / "registry.py"
    ).read_text()
    assert 'database.name + ".lock"' in registry  # the lock name this test expects


# --------------------------------------------------------------------------------------------
# A bake without Kubernetes or monitoring documents nothing the hook pruned.
# --------------------------------------------------------------------------------------------
def unpruned(answers: dict[str, str]) -> dict[str, str]:
    """`answers` with every answer the hook prunes on set to a value that keeps its paths (the
    first such choice): the bake that has every optional file."""
    kept = {
        answer: next(value for value in CHOICES[answer] if value != unused_when)
        for answer, unused_when, _ in OPTIONAL_PATHS
    }
    return {**answers, **kept}


def pruned_references(workdir: Path, answers: dict[str, str]) -> list[str]:
    """Lines of the bake with `answers` naming a file or directory it lacks that the same bake
    with every optional part (`unpruned`) has: its path, its file name, or "<name> workflow"."""
    full = bake_api(workdir / "full", unpruned(answers)).path
    pruned = bake_api(workdir / "pruned", answers).path
    have = actual_files(pruned)
    missing = sorted(actual_files(full) - have)
    assert missing, "the pruned bake lacks nothing"
    directories = {
        parent.as_posix()
        for path in missing
        for parent in Path(path).parents
        if parent != Path(".") and not (pruned / parent).is_dir()
    }
    names = {Path(path).name for path in missing} - {Path(path).name for path in have}
    workflows = {Path(path).stem for path in missing if path.startswith(".github/workflows/")} | {
        str(yaml.safe_load((full / path).read_text(encoding="utf-8"))["name"]).lower()
        for path in missing
        if path.startswith(".github/workflows/")
    }
    edge = r"(?<![\w./-])"
    patterns = [
        *(re.escape(path) for path in missing),
        *(re.escape(directory) + "/" for directory in directories),
        *(re.escape(name) + r"(?![\w-])" for name in names),
        *(re.escape(name) + r"s? workflows?\b" for name in workflows),
    ]
    reference = re.compile(edge + "(?:" + "|".join(patterns) + ")", re.IGNORECASE)
    found = []
    for relative in sorted(have):
        if relative == "uv.lock" or relative.startswith("tests/"):
            continue
        try:
            text = (pruned / relative).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if reference.search(line):
                found.append(f"{relative}:{number}: {line.strip()}")
    return found


@pytest.mark.parametrize(
    ("deploy_target", "monitoring"), [("none", "yes"), ("none", "no"), ("kubernetes", "no")]
)
def test_a_pruned_bake_mentions_no_pruned_file(
    tmp_path: Path, deploy_target: str, monitoring: str
) -> None:
    """docs, READMEs, the Makefile, workflows, scripts, settings and code name only what the
    bake has (without monitoring: no docs/monitoring.md in drift.py, params.yaml, .gitignore)."""
    answers = {"deploy_target": deploy_target, "monitoring": monitoring}
    found = pruned_references(tmp_path, answers)
    assert not found, "\n".join(found)


def test_the_pruned_reference_scan_sees_a_mention(tmp_path: Path) -> None:
    """The scan itself: the Kubernetes bake's own docs name deploy/ and the deploy workflow."""
    full = bake_api(tmp_path / "kubernetes").path
    readme = (full / "docs" / "serving.md").read_text(encoding="utf-8")
    assert "docs/deploy.md" in readme and "the deploy workflow" in readme
