"""Install a baked project and run what its README promises: the pipeline, tests and linters.

Slow (minutes): one default bake and one regression bake are shared by the whole session. The
tests of the default bake run in file order and each leaves the project in a reproduced state.

What the generated suite covers (run here by test_project_tests_pass) is not repeated: its
test_cli.py lists every dvc.yaml stage among the commands, and its test_pipeline.py,
test_validation.py and test_schema.py stop the pipeline on corrupted data and declared bounds
without touching the models, and infer the contract again for a new source.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import Project, prepare_project

pytestmark = pytest.mark.slow

RUNNING_STAGE = re.compile(r"Running stage '([^']+)'")


def _stages_run(output: str) -> list[str]:
    return RUNNING_STAGE.findall(output)


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The default bake, installed from its lock and committed to a fresh git repository."""
    return prepare_project(tmp_path_factory.mktemp("default-project"), {})


@pytest.fixture(scope="session")
def reproduced(project: Project) -> Project:
    """The default bake after its first `dvc repro`."""
    result = project.repro()
    project.first_repro_output = result.stdout + result.stderr  # type: ignore[attr-defined]
    return project


@pytest.fixture(scope="session")
def regression(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = prepare_project(
        tmp_path_factory.mktemp("regression-project"),
        {
            "project_name": "House Prices",
            "task": "regression",
            "dvc_remote": "local",
            "deploy_target": "none",
            "monitoring": "no",
            "license": "proprietary",
        },
    )
    project.repro()
    return project


# --------------------------------------------------------------------------------------------
# The default project.
# --------------------------------------------------------------------------------------------
def test_installs_from_its_lock_and_the_lock_is_current(project: Project) -> None:
    project.run("uv", "sync", "--locked")
    project.run("uv", "lock", "--check")


def test_ruff_passes(project: Project) -> None:
    project.run("uv", "run", "ruff", "check", ".")
    project.run("uv", "run", "ruff", "format", "--check", ".")


@pytest.fixture
def restore_tracked_files(project: Project) -> Iterator[None]:
    """Undo whatever a fixing hook rewrites, so later tests see the baked sources."""
    project.run("git", "add", "-A")
    before = project.tracked_files()
    yield
    for name, content in before.items():
        path = project.path / name
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)


def test_pre_commit_passes(project: Project, restore_tracked_files: None) -> None:
    project.run("uv", "run", "pre-commit", "run", "--all-files", "--show-diff-on-failure")


def test_first_repro_runs_every_stage_and_writes_outputs(reproduced: Project) -> None:
    output = reproduced.first_repro_output  # type: ignore[attr-defined]
    assert sorted(_stages_run(output)) == sorted(reproduced.stages), output
    root = reproduced.path
    for relative in (
        "metrics/scores.json",
        "metrics/intervals.json",
        "reports/tracking.json",
        "schema.yaml",
        "dvc.lock",
        "plots/importance.csv",
        "plots/confusion.csv",
        "plots/roc/candidate.csv",
        "plots/precision_recall/baseline.csv",
    ):
        assert (root / relative).is_file(), relative
    assert (root / "mlflow.db").is_file(), "MLflow did not default to the project's SQLite store"
    for path in _plot_files(root):
        assert (root / path).is_file(), f"plot data {path} named in dvc.yaml was not written"


def _plot_definitions(root: Path) -> list[dict]:
    return yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["plots"]


def _plot_files(root: Path) -> set[str]:
    return {
        path
        for definition in _plot_definitions(root)
        for spec in definition.values()
        for path in spec["y"]
    }


def test_plots_render_once_each(reproduced: Project, tmp_path: Path) -> None:
    """`dvc plots show` draws each plot defined in dvc.yaml, and nothing twice."""
    reproduced.run("uv", "run", "dvc", "plots", "show", "-o", str(tmp_path))
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    rendered = re.findall(r'<div id = "([^"]+)"', html)
    assert len(rendered) == len(_plot_definitions(reproduced.path)), rendered


def test_project_tests_pass(reproduced: Project) -> None:
    """Every test of the generated project, the slow ones too, as its CI runs them."""
    reproduced.run("uv", "run", "pytest", "-q", "-p", "no:cacheprovider", "-m", "slow or not slow")


def test_project_default_test_run_leaves_out_only_the_slow_tests(reproduced: Project) -> None:
    """`uv run pytest` (the README's command) runs the fast tests and skips the marked ones."""
    result = reproduced.run("uv", "run", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q")
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    assert collected, result.stdout
    assert not any("test_promote_then_champion_then_rollback" in line for line in collected)
    assert "deselected" in result.stdout


def test_second_repro_runs_nothing(reproduced: Project) -> None:
    result = reproduced.repro()
    output = result.stdout + result.stderr
    assert _stages_run(output) == [], output
    assert "Data and pipelines are up to date" in output or all(
        f"Stage '{stage}' didn't change" in output for stage in reproduced.stages
    ), output


def test_changing_a_candidate_param_reruns_only_downstream_stages(reproduced: Project) -> None:
    params = reproduced.path / "params.yaml"
    text = params.read_text(encoding="utf-8")
    changed, count = re.subn(
        r"(?m)^(    n_estimators: )(\d+)", lambda m: f"{m[1]}{int(m[2]) + 25}", text
    )
    assert count == 1, "train.candidate.n_estimators not found in params.yaml"
    params.write_text(changed, encoding="utf-8")
    candidate = yaml.safe_load(changed)["train"]["candidate"]
    assert candidate["n_estimators"] != yaml.safe_load(text)["train"]["candidate"]["n_estimators"]
    output = reproduced.repro().stdout
    expected = reproduced.stages_affected_by("train.candidate.n_estimators")
    assert expected[:2] == ["train", "evaluate"], expected
    assert sorted(_stages_run(output)) == sorted(expected), output
    assert not {"ingest", "validate", "split"} & set(_stages_run(output))


def _serve_as_the_readme_says(project: Project, home: Path) -> dict[str, object]:
    """export -> bentoml build -> bentoml serve (from the root, no target) -> one prediction.

    Returns what /v1/info and /v1/predict answered. The Bento must record the exported model's
    tag: that is what pins the served version.
    """
    env = {**project.env, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}

    def run(*command: str) -> str:
        result = subprocess.run(
            command, cwd=project.path, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        return result.stdout

    exported = run("uv", "run", project.package, "export", "--proposed")
    model_tag = exported.split()[1].rstrip(":")
    built = run("uv", "run", "bentoml", "build", "--output", "tag")
    bento_tag = re.search(r"__tag__:(\S+)", built)
    assert bento_tag, built
    name, version = bento_tag[1].split(":")
    bento = yaml.safe_load((home / "bentos" / name / version / "bento.yaml").read_text())
    assert [model["tag"] for model in bento["services"][0]["models"]] == [model_tag]
    example = f"{project.package}.serving.predict"
    body = json.loads(run("uv", "run", "python", "-m", example, "example"))

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        ["uv", "run", "bentoml", "serve", "--port", str(port)],
        cwd=project.path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, "bentoml serve exited"
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/readyz", timeout=5) as ready,
            ):
                if ready.status == 200:
                    break
            assert time.monotonic() < deadline, "not ready within 120 s"
            time.sleep(1)
        with urllib.request.urlopen(f"{url}/v1/info", timeout=30) as response:
            info = json.loads(response.read())
        request = urllib.request.Request(
            f"{url}/v1/predict",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
            assert response.headers["X-Model-Version"] == info["model_version"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return {"info": info, "answer": answer}


def test_the_gate_approved_model_serves_from_a_built_bento(
    reproduced: Project, tmp_path: Path
) -> None:
    served = _serve_as_the_readme_says(reproduced, tmp_path / "bentoml")
    gate = json.loads((reproduced.path / "reports/gate.json").read_text(encoding="utf-8"))
    assert served["info"]["model_sha256"] == gate["proposed_model"]["sha256"]  # type: ignore[index]
    prediction = served["answer"]["predictions"][0]["prediction"]  # type: ignore[index]
    assert prediction in served["info"]["classes"]  # type: ignore[index]


def test_the_docs_site_builds_offline_with_the_latest_model_card(reproduced: Project) -> None:
    """`mkdocs build --strict` passes, and the card shows this run's metrics and figures."""
    reproduced.run("uv", "run", "mkdocs", "build", "--strict", "--site-dir", "site")
    root = reproduced.path
    card = (root / "docs/model-card.md").read_text(encoding="utf-8")
    scores = json.loads((root / "metrics/scores.json").read_text(encoding="utf-8"))
    primary = json.loads((root / "metrics/intervals.json").read_text(encoding="utf-8"))[
        "primary_metric"
    ]
    assert f"{scores['candidate'][primary]:.4f}" in card
    images = re.findall(r"!\[[^]]*\]\((img/[^)]+)\)", card)
    assert images and all((root / "docs" / image).is_file() for image in images)
    assert (root / "site/model-card/index.html").is_file()
    # Nothing on the built pages loads from the internet (fonts, scripts, styles).
    page = (root / "site/model-card/index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis.com" not in page
    reference = (root / "docs/reference/cli.md").read_text(encoding="utf-8")
    for stage in reproduced.stages:
        assert f"## `{stage}`" in reference, stage


# --------------------------------------------------------------------------------------------
# The regression project.
# --------------------------------------------------------------------------------------------
def test_regression_pipeline_writes_regression_outputs(regression: Project) -> None:
    root = regression.path
    assert (root / "plots" / "residuals.csv").is_file()
    assert not (root / "plots" / "roc").exists()
    scores = json.loads((root / "metrics" / "scores.json").read_text(encoding="utf-8"))
    keys = set(_keys(scores))
    assert {"rmse", "mae", "r2"} <= keys, scores
    assert not keys & {"roc_auc", "log_loss", "accuracy"}, scores


def _keys(node: object) -> Iterator[str]:
    """Every key at every depth of parsed JSON."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item)


def test_regression_project_tests_pass(regression: Project) -> None:
    regression.run("uv", "run", "pytest", "-q", "-p", "no:cacheprovider")


def test_regression_lock_is_current(regression: Project) -> None:
    regression.run("uv", "lock", "--check")


def test_regression_model_serves_values(regression: Project, tmp_path: Path) -> None:
    served = _serve_as_the_readme_says(regression, tmp_path / "bentoml")
    assert served["info"]["task"] == "regression"  # type: ignore[index]
    assert isinstance(served["answer"]["predictions"][0]["prediction"], float)  # type: ignore[index]
