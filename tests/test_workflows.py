"""The generated GitHub Actions workflows: linted, least-privilege, pinned, and runnable.

Checked statically (no runner here): actionlint and zizmor pass, every action is pinned by a
commit SHA, tokens are read-only except where a job must write, and every `uv run` command a
workflow calls exists in the baked project.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import TEMPLATE, Bake, bake_api

TOOLS = Path(sys.executable).parent
COMBINATIONS = {
    "defaults": {},
    "server-s3": {"mlflow_tracking": "server", "dvc_remote": "s3"},
    "gcs": {"dvc_remote": "gcs", "task": "regression"},
    "server-azure": {"mlflow_tracking": "server", "dvc_remote": "azure", "task": "multiclass"},
    "local-remote": {"dvc_remote": "local", "deploy_target": "none", "monitoring": "no"},
}
# The jobs allowed to write, and what: everything else reads at most.
WRITERS = {
    ("ci.yml", "comment"): {"pull-requests"},
    ("train.yml", "pull-request"): {"contents", "pull-requests"},
    ("deploy.yml", "build"): {"packages"},
}
DVC_COMMANDS = {"repro", "metrics", "params", "plots", "pull", "push", "update", "status"}
USES = re.compile(r"^\s*-?\s*uses:\s*(\S+)(.*)$", re.MULTILINE)
UV_RUN = re.compile(r"uv run ([\w.-]+)(?: ([\w./-]+))?")
MAKE = re.compile(r"(?:^|[;&|(]\s*|\s)make ([\w-]+)", re.MULTILINE)
RELEASE = re.compile(r"deploy/release\.py ([\w-]+)")
# Commands docs/interfaces.md defines that another branch adds to cli.py (serving: `export`,
# `predict`). Workflows may call them already; remove a name here once cli.py has it.
PENDING_COMMANDS = {"export"}


@pytest.fixture(scope="module", params=sorted(COMBINATIONS))
def baked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Bake:
    return bake_api(tmp_path_factory.mktemp(request.param), COMBINATIONS[request.param])


def workflows(root: Path) -> list[Path]:
    found = sorted((root / ".github" / "workflows").glob("*.yml"))
    assert found, f"no workflows under {root}"
    return found


def run_tool(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("root", ["generated", "template"])
def test_actionlint_passes(baked: Bake, root: str) -> None:
    files = workflows(baked.path if root == "generated" else TEMPLATE)
    result = run_tool(str(TOOLS / "actionlint"), *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("root", ["generated", "template"])
def test_zizmor_finds_nothing(baked: Bake, root: str) -> None:
    directory = (baked.path if root == "generated" else TEMPLATE) / ".github" / "workflows"
    result = run_tool(str(TOOLS / "zizmor"), "--offline", "--no-progress", str(directory))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout + result.stderr


def test_actions_are_pinned_by_commit_sha_with_the_release_named(baked: Bake) -> None:
    for workflow in workflows(baked.path):
        for action, comment in USES.findall(workflow.read_text(encoding="utf-8")):
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), (workflow.name, action)
            assert re.search(r"# v\d+\.\d+\.\d+", comment), (workflow.name, action, comment)


def test_tokens_are_least_privilege(baked: Bake) -> None:
    for workflow in workflows(baked.path):
        document = yaml.safe_load(workflow.read_text(encoding="utf-8"))
        assert document["permissions"] == {}, f"{workflow.name}: default permissions not empty"
        for name, job in document["jobs"].items():
            assert "permissions" in job, f"{workflow.name}: job {name} has no permissions block"
            writes = {scope for scope, level in job["permissions"].items() if level == "write"}
            allowed = WRITERS.get((workflow.name, name), set())
            assert writes <= allowed, f"{workflow.name}: job {name} writes {writes - allowed}"


def test_checkouts_do_not_keep_credentials(baked: Bake) -> None:
    for workflow in workflows(baked.path):
        document = yaml.safe_load(workflow.read_text(encoding="utf-8"))
        for job in document["jobs"].values():
            for step in job["steps"]:
                if str(step.get("uses", "")).startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False


def cli_commands(project: Path, package: str) -> set[str]:
    """The subcommands of the generated CLI, read from cli.py without importing it."""
    tree = ast.parse((project / "src" / package / "cli.py").read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and any(ast.unparse(decorator) == "app.command()" for decorator in node.decorator_list)
    }


def installed_tools(project: Path) -> set[str]:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    requirements = [
        *pyproject["project"]["dependencies"],
        *pyproject["dependency-groups"]["dev"],
    ]
    return {re.split(r"[<>=\[ ]", requirement)[0] for requirement in requirements}


def test_workflows_call_only_commands_the_project_has(baked: Bake) -> None:
    package = baked.answers["package_name"]
    commands = cli_commands(baked.path, package)
    assert not PENDING_COMMANDS & commands, "cli.py has it now: remove it from PENDING_COMMANDS"
    tools = installed_tools(baked.path)
    texts = {path.name: path.read_text(encoding="utf-8") for path in workflows(baked.path)}
    calls = [
        (name, tool, sub) for name, text in texts.items() for tool, sub in UV_RUN.findall(text)
    ]
    assert calls
    for workflow, tool, sub in calls:
        if tool == package:
            assert sub in commands | PENDING_COMMANDS, (
                f"{workflow}: `{package} {sub}` is not a CLI command"
            )
        elif tool == "dvc":
            assert sub in DVC_COMMANDS, f"{workflow}: unexpected `dvc {sub}`"
        elif tool == "python":
            assert (baked.path / sub).is_file(), f"{workflow}: `uv run python {sub}`: no such file"
        else:
            assert tool in tools, f"{workflow}: `uv run {tool}` is not installed by the project"
    makefile = (baked.path / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w-]+):", makefile, re.MULTILINE))
    release = baked.path / "deploy" / "release.py"
    steps = (
        set(re.findall(r'add_parser\(\s*"([\w-]+)"', release.read_text("utf-8")))
        if (release.is_file())
        else set()
    )
    for name, text in texts.items():
        for target in MAKE.findall(text):
            assert target in targets, f"{name}: `make {target}` is not a Makefile target"
        for step in RELEASE.findall(text):
            assert step in steps, f"{name}: `deploy/release.py {step}` does not exist"


@pytest.mark.parametrize("root", ["generated", "template"])
def test_workflows_match_the_github_workflow_schema(baked: Bake, root: str) -> None:
    files = workflows(baked.path if root == "generated" else TEMPLATE)
    result = run_tool(
        str(TOOLS / "check-jsonschema"),
        "--builtin-schema",
        "vendor.github-workflows",
        *map(str, files),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_challenger_registration_only_with_a_tracking_server(baked: Bake) -> None:
    ci = yaml.safe_load((baked.path / ".github" / "workflows" / "ci.yml").read_text("utf-8"))
    has_register = "register" in ci["jobs"]
    assert has_register == (baked.answers["mlflow_tracking"] == "server")
    if has_register:
        assert ci["jobs"]["register"]["environment"] == "registry"
        assert "secrets.MLFLOW_TRACKING_URI" in ci["jobs"]["register"]["env"]["MLFLOW_TRACKING_URI"]
