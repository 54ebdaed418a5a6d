"""The generated GitHub Actions workflows: linted, least-privilege, pinned, and runnable.

Checked statically (no runner here): actionlint, zizmor and GitHub's workflow schema pass, every
action is pinned by a commit SHA, tokens are read-only except where a job must write, storage
credentials reach only the steps that pull or push, every `uv run` command a workflow calls
exists in the baked project, and docs/github.md names exactly what the workflows use.
tests/test_workflow_steps.py runs the steps themselves.
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
    ("monitor.yml", "report"): {"issues", "actions"},  # the drift issue; start train.yml
}
DVC_COMMANDS = {"repro", "metrics", "params", "plots", "pull", "push", "update", "status"}
USES = re.compile(r"^\s*-?\s*uses:\s*(\S+)(.*)$", re.MULTILINE)
UV_RUN = re.compile(r"uv run ([\w.-]+)(?: ([\w./-]+))?")
# The actions that exchange GitHub's OIDC token for cloud credentials (and need `id-token`).
CREDENTIAL_ACTIONS = (
    "aws-actions/configure-aws-credentials@",
    "google-github-actions/auth@",
    "azure/login@",
)
DATA_SCRIPT = ".github/scripts/dvc_remote.py"
DELETE_KEY_FILE = 'rm -f -- "$CREDENTIALS_FILE"'
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
SECRET_OR_VARIABLE = re.compile(r"\b(secrets|vars)\.([A-Z][A-Z0-9_]*)")
MAKE = re.compile(r"(?:^|[;&|(]\s*|\s)make ([\w-]+)", re.MULTILINE)
RELEASE = re.compile(r"deploy/release\.py ([\w-]+)")


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


def load(workflow: Path) -> dict:
    return yaml.safe_load(workflow.read_text(encoding="utf-8"))


def uses_cloud_credentials(job: dict) -> bool:
    return any(str(step.get("uses", "")).startswith(CREDENTIAL_ACTIONS) for step in job["steps"])


def test_tokens_are_least_privilege(baked: Bake) -> None:
    for workflow in workflows(baked.path):
        document = load(workflow)
        assert document["permissions"] == {}, f"{workflow.name}: default permissions not empty"
        for name, job in document["jobs"].items():
            assert "permissions" in job, f"{workflow.name}: job {name} has no permissions block"
            writes = {scope for scope, level in job["permissions"].items() if level == "write"}
            allowed = set(WRITERS.get((workflow.name, name), set()))
            if uses_cloud_credentials(job):
                allowed.add("id-token")  # an OIDC token for the cloud, not a repository write
            assert writes <= allowed, f"{workflow.name}: job {name} writes {writes - allowed}"


def test_the_job_that_parses_a_download_cannot_write(baked: Bake) -> None:
    """monitor.yml: the batch is untrusted; the job that fetches it holds a read-only token."""
    path = baked.path / ".github/workflows/monitor.yml"
    if not path.exists():
        pytest.skip("no monitoring in this bake")
    for name, job in load(path)["jobs"].items():
        scripts = " ".join(step.get("run", "") for step in job["steps"])
        writes = {scope for scope, level in job["permissions"].items() if level == "write"}
        if "curl" in scripts or " drift --current" in scripts:
            assert writes <= {"id-token"}, (name, writes)
        if writes - {"id-token"}:
            uses = [str(step.get("uses", "")) for step in job["steps"]]
            assert not any(use.startswith("actions/checkout@") for use in uses), name
            assert "uv run" not in scripts, f"{name} runs project code with a write token"


def test_workflows_match_githubs_workflow_schema(baked: Bake) -> None:
    """check-jsonschema ships GitHub's workflow schema: this runs offline."""
    result = run_tool(
        str(TOOLS / "check-jsonschema"),
        "--builtin-schema",
        "vendor.github-workflows",
        *map(str, workflows(baked.path)),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cloud_credentials_reach_only_the_steps_that_pull_or_push(baked: Bake) -> None:
    """Not job `env` (which `uv sync` and `dvc repro` would see), never exported by the action."""
    cloud = baked.answers["dvc_remote"] in ("s3", "gcs", "azure")
    seen_credential_step = False
    for workflow in workflows(baked.path):
        for name, job in load(workflow)["jobs"].items():
            job_env = " ".join(map(str, job.get("env", {}).values()))
            assert "secrets." not in job_env, f"{workflow.name}: job {name} exports secrets"
            ids = set()
            for step in job["steps"]:
                uses = str(step.get("uses", ""))
                if uses.startswith(CREDENTIAL_ACTIONS):
                    seen_credential_step = True
                    ids.add(step["id"])
                    inputs = step.get("with", {})
                    if uses.startswith("aws-actions/"):
                        assert inputs["output-env-credentials"] is False
                    if uses.startswith("google-github-actions/"):
                        assert inputs["export_environment_variables"] is False
                env = " ".join(map(str, step.get("env", {}).values()))
                storage = re.findall(r"steps\.([\w-]+)\.outputs", env)
                if {*storage} & ids or re.search(r"secrets\.(AWS|GCP|AZURE)_", env):
                    # The data step, or the step that deletes the credentials file.
                    run = step["run"]
                    assert DATA_SCRIPT in run or run == DELETE_KEY_FILE, (workflow.name, run)
    assert seen_credential_step == cloud


def test_no_cloud_key_file_outlives_its_step(baked: Bake) -> None:
    """google-github-actions/auth writes a file; the step after its user deletes it, always."""
    for workflow in workflows(baked.path):
        for job in load(workflow)["jobs"].values():
            for index, step in enumerate(job["steps"]):
                if str(step.get("uses", "")).startswith("google-github-actions/auth@"):
                    cleanup = job["steps"][index + 2]
                    assert cleanup["if"].startswith("always()"), cleanup
                    assert cleanup["run"] == DELETE_KEY_FILE
                    assert step["id"] in cleanup["env"]["CREDENTIALS_FILE"]


def test_every_repro_pulls_the_dvc_tracked_data_first(baked: Bake) -> None:
    for workflow in workflows(baked.path):
        for name, job in load(workflow)["jobs"].items():
            runs = [str(step.get("run", "")) for step in job["steps"]]
            repro = [i for i, run in enumerate(runs) if "dvc repro" in run]
            if not repro:
                continue
            plan = [i for i, run in enumerate(runs) if f"{DATA_SCRIPT} plan" in run]
            pull = [i for i, run in enumerate(runs) if f"{DATA_SCRIPT} pull" in run]
            assert plan and pull, f"{workflow.name}: job {name} repros without pulling"
            assert plan[0] < pull[0] < repro[0], f"{workflow.name}: job {name}"


def test_pull_requests_from_forks_never_get_storage_credentials(baked: Bake) -> None:
    pipeline = load(baked.path / ".github" / "workflows" / "ci.yml")["jobs"]["pipeline"]
    plan = next(step for step in pipeline["steps"] if f"{DATA_SCRIPT} plan" in step.get("run", ""))
    assert plan["env"]["FROM_FORK"] == (
        "${{ github.event_name == 'pull_request' && "
        "github.event.pull_request.head.repo.full_name != github.repository }}"
    )
    for step in pipeline["steps"]:
        if str(step.get("uses", "")).startswith(CREDENTIAL_ACTIONS):
            assert step["if"].startswith("steps.data.outputs.pull == 'true'"), step


def test_main_runs_are_never_cancelled(baked: Bake) -> None:
    ci = load(baked.path / ".github" / "workflows" / "ci.yml")
    assert ci["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    train = load(baked.path / ".github" / "workflows" / "train.yml")
    assert train["concurrency"]["cancel-in-progress"] is False
    if "register" in ci["jobs"]:
        assert ci["jobs"]["register"]["concurrency"]["cancel-in-progress"] is False


def test_retraining_commits_the_paths_dvc_names(baked: Bake) -> None:
    """No hand-kept list: the pull request adds what `dvc_remote.py paths` derived from DVC."""
    train = load(baked.path / ".github" / "workflows" / "train.yml")
    retrain = train["jobs"]["retrain"]
    assert retrain["outputs"]["paths"] == "${{ steps.paths.outputs.paths }}"
    names = [step.get("id") or step.get("name") for step in retrain["steps"]]
    runs = [str(step.get("run", "")) for step in retrain["steps"]]
    push = next(i for i, run in enumerate(runs) if f"{DATA_SCRIPT} push" in run)
    assert push < names.index("paths"), "data must be pushed before the pull request exists"
    upload = next(s for s in retrain["steps"] if "upload-artifact" in str(s.get("uses")))
    assert upload["with"]["path"] == "${{ steps.paths.outputs.paths }}"
    create = next(
        step
        for step in train["jobs"]["pull-request"]["steps"]
        if "create-pull-request" in str(step.get("uses"))
    )
    assert create["with"]["add-paths"] == "${{ needs.retrain.outputs.paths }}"


def header_jobs(workflow: Path) -> set[str]:
    """The jobs a workflow's header comment describes (lines `#   <job>  <what it does>`)."""
    header = workflow.read_text(encoding="utf-8").split("\nname:", 1)[0]
    return set(re.findall(r"^#   ([a-z][\w-]*)\s{2,}", header, re.MULTILINE))


def test_header_comments_describe_exactly_the_jobs(baked: Bake) -> None:
    for workflow in workflows(baked.path):
        assert header_jobs(workflow) == set(load(workflow)["jobs"]), workflow.name


def test_github_setup_page_names_exactly_what_the_workflows_use(baked: Bake) -> None:
    page = (baked.path / "docs" / "github.md").read_text(encoding="utf-8")
    readme = (baked.path / "README.md").read_text(encoding="utf-8")
    assert "(docs/github.md)" in readme
    assert "Allow GitHub Actions to create and approve pull requests" in " ".join(page.split())
    used: set[str] = set()
    environments: set[str] = set()
    for workflow in workflows(baked.path):
        text = workflow.read_text(encoding="utf-8")
        used |= {name for _, name in SECRET_OR_VARIABLE.findall(text)}
        for job in load(workflow)["jobs"].values():
            environment = job.get("environment")
            if isinstance(environment, dict):
                environment = environment["name"]
            if environment:
                environments.add(environment)
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]{3,})`", page))
    # Names the workflows set themselves (not GitHub settings) may appear in prose.
    documented -= {"GITHUB_TOKEN"}
    assert used == documented, f"undocumented: {used - documented}; unused: {documented - used}"
    table = page.split("## Environments", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `([\w-]+)` \|", table, re.MULTILINE)) == environments


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
    tools = installed_tools(baked.path)
    texts = {path.name: path.read_text(encoding="utf-8") for path in workflows(baked.path)}
    calls = [
        (name, tool, sub) for name, text in texts.items() for tool, sub in UV_RUN.findall(text)
    ]
    assert calls
    for workflow, tool, sub in calls:
        if tool == "python":
            assert sub == "-c" or (baked.path / sub).is_file(), f"{workflow}: no {sub}"
        elif tool == package:
            assert sub in commands, f"{workflow}: `{package} {sub}` is not a CLI command"
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
        steps = ci["jobs"]["register"]["steps"]
        repro = next(step for step in steps if step.get("run") == "uv run dvc repro")
        assert "secrets.MLFLOW_TRACKING_URI" in repro["env"]["MLFLOW_TRACKING_URI"]
