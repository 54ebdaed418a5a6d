"""The promotion cycle on an installed bake: gate, promote, promote again, roll back.

Slow. Uses data on which LightGBM clearly beats the linear baseline (an interaction the
baseline cannot express), so the gate passes and the registry cycle can be exercised through
the project's own CLI, as a user would at a terminal.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import Project, prepare_project

pytestmark = pytest.mark.slow

MAKE_DATA = """
import numpy as np, pandas as pd
rng = np.random.default_rng(7)
n = 1500
x1, x2 = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
segment = rng.choice(["a", "b", "c"], n)
label = (x1 * x2 > 0) ^ (segment == "a")
flip = rng.random(n) < 0.05
label[flip] = ~label[flip]
frame = pd.DataFrame({"x1": x1, "x2": x2, "noise": rng.normal(size=n), "segment": segment,
                      "churned": np.where(label, "yes", "no")})
frame.loc[rng.random(n) < 0.05, "x2"] = np.nan
frame.loc[rng.random(n) < 0.05, "segment"] = None
frame.to_csv("data/external/interactions.csv", index=False)
"""


def edit_params(project: Project, **changes: object) -> None:
    """Set dotted params.yaml keys, the way a user edits the file."""
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
    """What the command printed (stdout; error messages from stderr when it failed)."""
    result = project.run("uv", "run", project.package, *arguments, check=check)
    return result.stdout if result.returncode == 0 else result.stdout + result.stderr


def champion(project: Project) -> int:
    listing = cli(project, "models")
    row = next(line for line in listing.splitlines() if "champion" in line.split()[1:2][0])
    return int(row.split()[0])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = prepare_project(tmp_path_factory.mktemp("promotion"), {"project_name": "Promo"})
    project.run("uv", "run", "python", "-c", MAKE_DATA)
    edit_params(
        project,
        data__source="data/external/interactions.csv",
        data__target="churned",
        gate__max_regression=0.2,  # a retrained candidate only has to be non-inferior
    )
    project.repro()
    return project


def test_gate_passes_and_writes_both_reports(project: Project) -> None:
    output = cli(project, "gate")
    report = json.loads((project.path / "reports" / "gate.json").read_text(encoding="utf-8"))
    assert report["decision"] == "promote", output
    assert {check["name"] for check in report["checks"]} == {
        "beats_baseline",
        "not_worse_than_champion",
        "latency_p95",
        "model_size",
        "sanity",
    }
    assert "skip" in {check["status"] for check in report["checks"]}  # no champion yet
    assert "promote" in (project.path / "reports" / "gate.md").read_text(encoding="utf-8")


def test_promote_twice_then_rollback_restores_the_earlier_version(project: Project) -> None:
    assert "challenger (none) -> v1" in cli(project, "promote")
    assert "champion (none) -> v1" in cli(project, "promote", "--to", "champion")

    edit_params(project, train__candidate__n_estimators=120)
    project.repro()
    assert "challenger v1 -> v2" in cli(project, "promote")
    assert "champion v1 -> v2" in cli(project, "promote", "--to", "champion")
    assert champion(project) == 2

    assert "champion v2 -> v1" in cli(project, "rollback")
    assert champion(project) == 1

    refused = cli(project, "rollback", check=False)
    assert "no earlier champion" in refused and "Traceback" not in refused
    assert champion(project) == 1

    assert "champion v1 -> v2" in cli(project, "rollback", "--to", "2")
    assert champion(project) == 2


def test_promotion_of_a_failed_gate_is_refused_and_changes_nothing(project: Project) -> None:
    before = cli(project, "models")
    edit_params(project, gate__min_improvement=10.0)
    result = project.run("uv", "run", project.package, "promote", check=False)
    assert result.returncode == 1
    assert "beats_baseline" in result.stderr and "nothing was registered" in result.stderr
    assert cli(project, "models") == before
    assert re.search(r"decision.: .reject", (project.path / "reports" / "gate.json").read_text())


def test_versions_carry_the_documented_tags(project: Project) -> None:
    script = (
        "from mlflow import MlflowClient; import json; c = MlflowClient('sqlite:///mlflow.db');"
        "print(json.dumps(c.get_model_version('promo', '1').tags))"
    )
    tags = json.loads(
        project.run("uv", "run", "python", "-c", script).stdout.strip().splitlines()[-1]
    )
    for key in ("git.commit", "params.md5", "data.train_md5", "gate.decision", "gate.report"):
        assert tags.get(key), f"version 1 has no tag {key}: {tags}"
    assert tags["gate.decision"] == "promote"
    assert Path(project.path / "mlflow.db").is_file()
