"""Run the generated workflows' own `run:` steps, as GitHub Actions would, on DVC-tracked data.

Slow (minutes). One project is baked with a local DVC remote; its data is tracked by DVC the
way its README advises (`dvc import-url` for a source that changes, `dvc add` for a file), then
committed and pushed. Each test clones it fresh, as a runner checks out a repository, and runs
the steps read from the YAML: nothing is retyped here. `uses:` steps (checkout, setup-uv,
artifacts) are skipped; GitHub's expressions are answered from a table, so a new expression in a
workflow fails these tests until someone decides what it means here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import Project, prepare_project

pytestmark = pytest.mark.slow

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
STEP_OUTPUT = re.compile(r"steps\.([\w-]+)\.outputs\.([\w-]+)")
# What GitHub would evaluate, for a pull request from a branch of the same repository.
SAME_REPO_PULL_REQUEST = {
    "github.event_name == 'pull_request' && "
    "github.event.pull_request.head.repo.full_name != github.repository": "false",
    "github.event_name == 'pull_request'": "true",
    "github.base_ref": "main",
}
SCHEDULED_RUN = {"inputs.force": "false", "github.event_name == 'pull_request'": "false"}


@dataclass
class StepRun:
    """What the steps of one job did: outputs by step id, the summary, each step's output."""

    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    summary: str = ""


def _read_outputs(path: Path) -> dict[str, str]:
    """Parse $GITHUB_OUTPUT: `name=value` lines and `name<<DELIMITER` blocks."""
    outputs: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    index = 0
    while index < len(lines):
        line = lines[index]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, index + 1)
            outputs[name] = "\n".join(lines[index + 1 : end])
            index = end + 1
        else:
            name, _, value = line.partition("=")
            outputs[name] = value
            index += 1
    return outputs


def _evaluate(expression: str, answers: dict[str, str], run: StepRun) -> str:
    """A GitHub expression's value: from the table, or a step output, or a test failure."""
    if expression in answers:
        return answers[expression]
    match = STEP_OUTPUT.fullmatch(expression)
    if match:
        return run.outputs.get(match[1], {}).get(match[2], "")
    pytest.fail(f"no value for the GitHub expression `{expression}`: add it to the test's table")


def _condition(condition: str, answers: dict[str, str], run: StepRun) -> bool:
    """Evaluate an `if:` made of step outputs compared with strings, `&&`, `||` and `always()`."""
    python = STEP_OUTPUT.sub(
        lambda m: repr(run.outputs.get(m[1], {}).get(m[2], "")), condition.strip()
    )
    for expression, value in answers.items():
        python = python.replace(expression, repr(value == "true"))
    python = python.replace("&&", " and ").replace("||", " or ").replace("always()", "True")
    if re.search(r"\b(github|vars|secrets|inputs|needs)\.", python):
        pytest.fail(f"no value for the condition `{condition}`: add it to the test's table")
    return bool(eval(python, {"__builtins__": {}}, {}))  # the workflow's own `if:` text


def run_job(
    project_root: Path,
    workflow: str,
    job: str,
    workdir: Path,
    env: dict[str, str],
    answers: dict[str, str],
    scratch: Path,
    after: dict[str, dict[str, str]] | None = None,
    stop_before: str | None = None,
) -> StepRun:
    """Run every `run:` step of `job` in `workdir`, in order, the way a runner does.

    `after` overrides a step's outputs once it ran (by step id), for decisions the test makes;
    `stop_before` names the first step (by name) not to run: the ones that need Docker or a
    cluster.
    """
    document = yaml.safe_load((project_root / ".github" / "workflows" / workflow).read_text())
    spec = document["jobs"][job]
    run = StepRun()
    summary = scratch / f"{job}-summary.md"
    for number, step in enumerate(spec["steps"]):
        name = step.get("id") or step.get("name") or f"step {number}"
        if stop_before is not None and step.get("name") == stop_before:
            break
        if "if" in step and not _condition(str(step["if"]), answers, run):
            continue
        if "run" not in step:
            continue
        assert "${{" not in step["run"], f"{name}: an expression is interpolated into `run:`"
        step_env = {**document.get("env", {}), **spec.get("env", {}), **step.get("env", {})}
        output = scratch / f"{job}-{number}-output"
        values = {
            key: EXPRESSION.sub(lambda m: _evaluate(m[1], answers, run), str(value))
            for key, value in step_env.items()
        }
        script = scratch / f"{job}-{number}.sh"
        script.write_text(step["run"], encoding="utf-8")
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workdir,
            env={
                **env,
                **values,
                "GITHUB_OUTPUT": str(output),
                "GITHUB_STEP_SUMMARY": str(summary),
                "RUNNER_TEMP": str(scratch),
            },
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        run.logs[name] = result.stdout + result.stderr
        if result.returncode != 0:
            pytest.fail(
                f"{workflow} job {job}, step `{name}` exited {result.returncode}:\n"
                f"{step['run']}\n--- output ---\n{run.logs[name][-6000:]}"
            )
        run.outputs[name] = {**_read_outputs(output), **(after or {}).get(name, {})}
    run.summary = summary.read_text(encoding="utf-8") if summary.exists() else ""
    return run


@dataclass(frozen=True)
class Origin:
    """The baked project with DVC-tracked data, committed and pushed: the 'GitHub repository'."""

    project: Project
    source: Path  # the file `dvc import-url` tracks (stands for a bucket that changes)
    scratch: Path

    def run_job(
        self,
        job: str,
        workdir: Path,
        answers: dict[str, str],
        stop_before: str | None = None,
        **after: dict[str, str],
    ) -> StepRun:
        """Run `job` ("workflow.yml:job") of the baked workflows in `workdir`."""
        workflow, name = job.split(":")
        root, env = self.project.path, self.project.env
        return run_job(
            root, workflow, name, workdir, env, answers, self.scratch, after or None, stop_before
        )

    def clone(self, name: str) -> Path:
        target = self.scratch / name
        self.project.run("git", "clone", "--quiet", str(self.project.path), str(target))
        return target


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Origin:
    scratch = tmp_path_factory.mktemp("workflow-steps")
    remote = scratch / "remote"
    remote.mkdir()
    project = prepare_project(scratch, {"dvc_remote": "local", "dvc_remote_url": str(remote)})
    source = scratch / "bucket" / "customers.csv"
    source.parent.mkdir()
    project.run(
        "uv",
        "run",
        "python",
        "-c",
        "import sys; from sklearn.datasets import load_breast_cancer; "
        "load_breast_cancer(as_frame=True).frame.to_csv(sys.argv[1], index=False)",
        str(source),
    )
    project.run("uv", "run", "dvc", "import-url", str(source), "data/external/customers.csv")
    (project.path / "data/external/regions.csv").write_text("region,name\n1,north\n2,south\n")
    project.run("uv", "run", "dvc", "add", "data/external/regions.csv")
    params = project.path / "params.yaml"
    text = params.read_text(encoding="utf-8")
    params.write_text(
        re.sub(r"(?m)^  source: .*$", "  source: data/external/customers.csv", text, count=1),
        encoding="utf-8",
    )
    project.repro()
    project.run("git", "add", "-A")
    project.run("git", "commit", "--quiet", "--no-verify", "-m", "Track data with DVC")
    project.run("uv", "run", "dvc", "push")
    return Origin(project, source, scratch)


def test_a_fresh_clone_cannot_reproduce_without_pulling(origin: Origin) -> None:
    """The failure the workflows must prevent: DVC-tracked data is not in git."""
    clone = origin.clone("no-pull")
    result = subprocess.run(
        [origin.project.executable("dvc"), "repro"],
        cwd=clone,
        env=origin.project.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "missing data 'source'" in result.stdout + result.stderr


def test_ci_pipeline_job_pulls_then_reproduces_in_a_fresh_clone(origin: Origin) -> None:
    clone = origin.clone("ci")
    run = origin.run_job("ci.yml:pipeline", clone, SAME_REPO_PULL_REQUEST)
    assert run.outputs["data"] == {"pull": "true", "push": "false", "run": "true"}
    assert (clone / "data/external/customers.csv").is_file()
    assert (clone / "data/external/regions.csv").is_file()
    assert (clone / "reports/gate.md").is_file()
    report = (clone / "pr-report.md").read_text(encoding="utf-8")
    assert "## Pipeline report" in report and "### Metrics against `main`" in report
    assert "## Pipeline report" in run.summary


def plan(origin: Origin, clone: Path, from_fork: bool) -> subprocess.CompletedProcess[str]:
    """The data step's decision in `clone`, outputs printed (no $GITHUB_OUTPUT)."""
    return subprocess.run(
        [origin.project.executable("python"), ".github/scripts/dvc_remote.py", "plan"],
        cwd=clone,
        env={**origin.project.env, "FROM_FORK": str(from_fork).lower(), "GITHUB_OUTPUT": ""},
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_fork_pull_request_skips_the_pipeline_with_a_notice(origin: Origin) -> None:
    result = plan(origin, origin.clone("fork"), from_fork=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "::notice title=Pipeline skipped::pull requests from forks" in result.stdout
    assert "pull=false" in result.stdout and "run=false" in result.stdout


def test_without_a_remote_the_data_step_fails_in_one_line(origin: Origin) -> None:
    clone = origin.clone("no-remote")
    dvc_config = clone / ".dvc" / "config"
    dvc_config.write_text(
        "\n".join(
            line
            for line in dvc_config.read_text(encoding="utf-8").splitlines()
            if "remote" not in line and "url =" not in line
        )
        + "\n"
    )
    result = plan(origin, clone, from_fork=False)
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1, result.stdout + result.stderr
    assert "data/external/customers.csv.dvc" in errors[0]
    assert "has no DVC remote" in errors[0] and "dvc remote add" in errors[0]
    assert "Traceback" not in result.stderr


def test_retraining_commits_everything_repro_changed_and_pushes_first(origin: Origin) -> None:
    """Changed data, the retrain job, then only what its pull request commits: DVC is clean."""
    frame = origin.source.read_text(encoding="utf-8").splitlines()
    origin.source.write_text("\n".join(frame[:-60]) + "\n", encoding="utf-8")  # new batch
    runner = origin.clone("retrain")
    # The gate's verdict on this small dataset does not matter here: what a passing run pushes
    # and commits does.
    run = origin.run_job("train.yml:retrain", runner, SCHEDULED_RUN, gate={"decision": "promote"})
    paths = run.outputs["paths"]["paths"].splitlines()
    assert {"dvc.lock", "data/external/customers.csv.dvc", "plots"} <= set(paths), paths

    # The pull-request job: a fresh checkout of main plus exactly those files.
    merged = origin.clone("merged")
    for relative in paths:
        source, target = runner / relative, merged / relative
        if target.is_dir():
            shutil.rmtree(target)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    changed = subprocess.run(
        ["git", "status", "--porcelain"], cwd=merged, capture_output=True, text=True, check=True
    ).stdout
    assert "dvc.lock" in changed and "customers.csv.dvc" in changed, changed

    # Whoever merges it pulls what the run pushed, and DVC finds nothing to rerun.
    dvc = [origin.project.executable("dvc")]
    env = origin.project.env
    subprocess.run([*dvc, "pull"], cwd=merged, env=env, capture_output=True, check=True)
    status = subprocess.run(
        [*dvc, "status"], cwd=merged, env=env, capture_output=True, text=True, check=True
    )
    assert "Data and pipelines are up to date." in status.stdout, status.stdout


def test_pre_commit_hook_runs_from_a_shell_without_the_virtualenv(origin: Origin) -> None:
    """A plain `git commit` after `pre-commit install`, with only git and uv on PATH."""
    project = origin.project
    clone = origin.clone("hooks")
    for command in (["uv", "sync", "--locked"], ["uv", "run", "pre-commit", "install"]):
        subprocess.run(command, cwd=clone, env=project.env, capture_output=True, check=True)
    uv = shutil.which("uv", path=project.env["PATH"])
    assert uv
    path = os.pathsep.join([str(Path(uv).parent), "/usr/bin", "/bin"])
    env = {**project.env, "PATH": path}
    env.pop("VIRTUAL_ENV", None)
    (clone / "badly_formatted.py").write_text("x=( 1,2 )\n", encoding="utf-8")
    subprocess.run(["git", "add", "badly_formatted.py"], cwd=clone, env=env, check=True)
    refused = subprocess.run(
        ["git", "commit", "-m", "unformatted"], cwd=clone, env=env, capture_output=True, text=True
    )
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "ruff format" in output, output
    assert "not found" not in output, output
    assert (clone / "badly_formatted.py").read_text(encoding="utf-8") == "x = (1, 2)\n"
    subprocess.run(["git", "add", "badly_formatted.py"], cwd=clone, env=env, check=True)
    accepted = subprocess.run(
        ["git", "commit", "-m", "formatted"], cwd=clone, env=env, capture_output=True, text=True
    )
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def test_rehearsal_trains_two_model_versions_and_bentos_for_its_canaries(origin: Origin) -> None:
    """rehearsal.yml up to its first Docker step, in a fresh clone: the data is pulled, two
    models with different versions are exported (the second on a larger holdout) and each is
    packaged as its own Bento: version 1 and versions 2 and 3 of the rehearsal (the rest, on a
    kind cluster, is checked in tests/test_deploy.py)."""
    clone = origin.clone("rehearsal")
    answers = {"github.workspace": str(clone)}
    run = origin.run_job("rehearsal.yml:rehearse", clone, answers, stop_before="Build the images")
    assert run.outputs["data"]["pull"] == "true"
    bentos = run.outputs["bentos"]
    assert bentos["first"] and bentos["second"] and bentos["first"] != bentos["second"], bentos
    store = clone / ".bentoml"
    for tag in bentos.values():
        name, version = tag.split(":")
        assert (store / "bentos" / name / version / "bento.yaml").is_file(), tag
    bundles = [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((store / "models").glob("*/*/bundle.json"))
    ]
    assert len(bundles) == 2 and bundles[0]["model_version"] != bundles[1]["model_version"]
    assert "\n  test_size: 0.25\n" in (clone / "params.yaml").read_text(encoding="utf-8")
