"""The promotion cycle on installed bakes, as a user runs it at a terminal.

Slow. For every task, the default bake goes repro -> promote -> champion -> a changed training
knob -> repro -> promote -> champion -> rollback with no other edit (baseline first: on the
bundled datasets the gate proposes the baseline). A bake with `mlflow_tracking=server` runs the
cycle and its refusals over HTTP against a real `mlflow server`. And a model kind added through
the documented recipe trains and is gated.

What the generated suite covers is not repeated here (its tests/test_registry.py, run by
test_generated_project.py): hand-edited metrics refused, gate and registry commands rewriting
no file, a store that refuses connections or never answers.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import Project, prepare_project

pytestmark = pytest.mark.slow

TASKS = ("binary_classification", "multiclass", "regression")


def edit_params(project: Project, **changes: object) -> None:
    """Set dotted params.yaml keys (`train__baseline__C=2`), the way a user edits the file."""
    path = project.path / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        section = params
        for key in parents:
            section = section[key]
        section[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def cli(project: Project, *arguments: str, check: bool = True) -> str:
    """What the command printed (stdout; with stderr when it failed)."""
    result = project.run("uv", "run", project.package, *arguments, check=check)
    return result.stdout if result.returncode == 0 else result.stdout + result.stderr


def refused(project: Project, *arguments: str) -> str:
    result = project.run("uv", "run", project.package, *arguments, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def models_table(project: Project) -> dict[int, dict[str, str]]:
    lines = cli(project, "models").splitlines()
    header = ["version", "aliases", "kind", "gate", "replaced"]
    return {
        int(cells[0]): dict(zip(header, cells[:5], strict=True))
        for cells in (line.split() for line in lines[1:])
    }


def champion(project: Project) -> int:
    return next(v for v, row in models_table(project).items() if "champion" in row["aliases"])


def gate_report(project: Project) -> dict:
    return json.loads((project.path / "reports" / "gate.json").read_text(encoding="utf-8"))


def run_cycle(project: Project) -> None:
    """The documented loop, start to finish, with a changed knob in the middle."""
    project.repro()
    report = gate_report(project)
    assert report["decision"] == "promote", report["explanation"]
    proposed = report["proposed"]
    assert "challenger (none) -> v1" in cli(project, "promote")
    assert "champion (none) -> v1" in cli(project, "promote", "--to", "champion")
    assert models_table(project)[1]["kind"] == report["proposed_model"]["kind"]

    # A retrained model with a changed training knob of the proposed model's kind: more
    # iterations for the linear baseline, a higher learning rate for the candidate (its number
    # of trees is chosen by early stopping, so a larger tree budget can leave it unchanged).
    knob, step = ("max_iter", 100) if proposed == "baseline" else ("learning_rate", 0.02)
    current = yaml.safe_load((project.path / "params.yaml").read_text())["train"][proposed][knob]
    edit_params(project, **{f"train__{proposed}__{knob}": current + step})
    project.repro()
    assert gate_report(project)["decision"] == "promote", gate_report(project)["explanation"]
    assert "challenger v1 -> v2" in cli(project, "promote")
    assert "champion v1 -> v2" in cli(project, "promote", "--to", "champion")
    assert "champion v2 -> v1" in cli(project, "rollback")
    assert champion(project) == 1
    assert models_table(project)[2]["replaced"] == "v1"


@pytest.fixture(scope="module", params=TASKS)
def task_project(request: pytest.FixtureRequest, tmp_path_factory) -> Project:
    return prepare_project(tmp_path_factory.mktemp(request.param), {"task": request.param})


def test_default_bake_completes_the_promotion_cycle(task_project: Project) -> None:
    run_cycle(task_project)
    if task_project.answers["task"] == "binary_classification":
        assert gate_report(task_project)["proposed"] == "baseline"  # baseline first
        gate_md = (task_project.path / "reports" / "gate.md").read_text(encoding="utf-8")
        assert gate_md.startswith("### Promotion gate: ✅ **promote the baseline** (linear)")
        assert "The candidate is not" in gate_md


# --------------------------------------------------------------------------------------------
# A model kind added through the documented recipe (docs/architecture.md, "Add a model").
# --------------------------------------------------------------------------------------------
def recipe(project: Project) -> tuple[str, dict]:
    """The code and the params.yaml lines of the recipe, as the docs show them."""
    text = (project.path / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Add a model", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)[1]
    params = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)[1]
    return textwrap.dedent(code), yaml.safe_load(textwrap.dedent(params))


def test_a_kind_added_by_the_documented_recipe_trains_and_is_gated(tmp_path_factory) -> None:
    project = prepare_project(tmp_path_factory.mktemp("new-kind"), {"project_name": "Kinds"})
    code, params = recipe(project)
    models = project.path / "src" / project.package / "core" / "models.py"
    models.write_text(models.read_text(encoding="utf-8") + "\n\n" + code, encoding="utf-8")
    edit_params(project, train__candidate=params["train"]["candidate"])
    output = project.repro().stdout
    assert "hist_gradient_boosting" in output
    manifest = json.loads((project.path / "models" / "manifest.json").read_text())
    assert manifest["models"]["candidate"]["kind"] == "hist_gradient_boosting"
    checks = {check["name"] for check in gate_report(project)["checks"]}
    assert {"beats_baseline", "baseline_beats_floor", "sanity"} <= checks
    importance = (project.path / "plots" / "importance.csv").read_text().splitlines()
    assert importance[0] == "feature,importance" and len(importance) > 2
    project.run("uv", "run", "pytest", "-q", "-p", "no:cacheprovider", "-x", "tests/test_models.py")


# --------------------------------------------------------------------------------------------
# Against a real tracking server.
# --------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`mlflow server` from the project's environment, on a free loopback port."""

    def __init__(self, project: Project, root: Path) -> None:
        self.project, self.root = project, root
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        command = [
            *("uv", "run", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port)),
            *("--backend-store-uri", f"sqlite:///{self.root / 'server.db'}"),
            *("--artifacts-destination", str(self.root / "artifacts"), "--workers", "1"),
        ]
        self.log = (self.root / "server.log").open("a")
        self.process = subprocess.Popen(
            command,
            cwd=self.project.path,
            env=self.project.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                import urllib.request

                with urllib.request.urlopen(f"{self.uri}/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.5)
        self.stop()
        pytest.fail(f"mlflow server did not start:\n{(self.root / 'server.log').read_text()}")

    def stop(self) -> None:
        import os
        import signal

        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        if hasattr(self, "log"):
            self.log.close()


@pytest.fixture(scope="module")
def server_project(tmp_path_factory) -> Iterator[tuple[Project, Server]]:
    scratch = tmp_path_factory.mktemp("server")
    project = prepare_project(scratch, {"project_name": "Served", "mlflow_tracking": "server"})
    server = Server(project, scratch / "mlflow-server")
    server.start()
    project.env["MLFLOW_TRACKING_URI"] = server.uri
    try:
        yield project, server
    finally:
        server.stop()


def test_the_cycle_runs_over_http(server_project) -> None:
    project, server = server_project
    run_cycle(project)
    assert not (project.path / "mlflow.db").exists(), "tracked locally instead of the server"
    tracking = json.loads((project.path / "reports" / "tracking.json").read_text())
    assert tracking["tracking_uri"] == server.uri


def test_refusals_over_http(server_project) -> None:
    project, _ = server_project
    before = cli(project, "models")
    message = refused(project, "rollback", "--to", "1", "--reason", "no override flag")
    assert "--reason goes with --override" in message
    assert "already the champion" in refused(project, "rollback", "--to", "1")
    assert "has no version 9" in refused(project, "promote", "--to", "champion", "--version", "9")
    assert cli(project, "models") == before
    assert "champion v1 -> v2" in cli(project, "rollback", "--to", "2")  # v2 passed the gate
