"""The registry commands: promote, promote --to champion, rollback, models.

Each test starts from a copy of a project whose candidate clearly beats the baseline and is
logged to MLflow, in a registry of its own that has no version yet.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from {{ cookiecutter.package_name }}.cli import app
from {{ cookiecutter.package_name }}.registry import (
    CHALLENGER,
    CHAMPION,
    HISTORY_TAG,
    alias_version,
    model_name,
    register_candidate,
)

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [*args, "--params", "params.yaml"])


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, f"{' '.join(args)}: {result.output}"
    return result.stdout


def refused(*args: str) -> str:
    """The command fails as a user error: exit 1, one `error:` message, no traceback."""
    result = run(*args)
    assert result.exit_code == 1, f"{' '.join(args)}: {result.output}"
    assert result.stderr.startswith("error: "), result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.stderr


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


class Registry:
    """Read-only views of the registered model, for assertions."""

    def __init__(self, name: str, uri: str) -> None:
        self.name = name
        # Explicit: mlflow.set_tracking_uri, called by every command, outlives a test.
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def alias(self, alias: str) -> int | None:
        found = alias_version(self.client, self.name, alias)
        return None if found is None else int(found.version)

    def champion(self) -> int:
        return int(self.client.get_model_version_by_alias(self.name, CHAMPION).version)

    def versions(self) -> list[int]:
        found = self.client.search_model_versions(f"name='{self.name}'")
        return sorted(int(version.version) for version in found)

    def history(self) -> list[int]:
        tags = self.client.get_registered_model(self.name).tags
        return json.loads(tags[HISTORY_TAG])

    def state(self) -> tuple:
        return self.versions(), self.alias(CHALLENGER), self.alias(CHAMPION), self.history()


@pytest.fixture
def registry(interaction_project) -> Registry:
    params = interaction_project.params()
    return Registry(model_name(params), params.mlflow.resolved_tracking_uri())


def retrain(project, n_estimators: int) -> None:
    """A new candidate: change a training parameter, then train and evaluate (and log) it."""
    candidate = {**project.settings["train"]["candidate"], "n_estimators": n_estimators}
    project.write_params(train={"candidate": candidate})
    ok("train")
    ok("evaluate")


def test_promote_then_champion_then_rollback(interaction_project, registry):
    project = interaction_project
    assert "challenger (none) -> v1" in ok("promote")
    v1 = registry.client.get_model_version_by_alias(registry.name, CHALLENGER)
    assert int(v1.version) == 1
    tags = v1.tags
    assert tags["gate.decision"] == "promote"
    assert tags["gate.failed_checks"] == "none"
    assert tags["git.commit"]  # "unknown" outside a git repository
    settings = project.params().model_dump_json(by_alias=True).encode()
    assert tags["params.md5"] == hashlib.md5(settings, usedforsecurity=False).hexdigest()
    assert tags["data.train_md5"] == md5(project.root / "data/processed/train.parquet")
    full_report = json.loads((project.root / "reports/gate.json").read_text())
    assert json.loads(tags["gate.report"]) == {
        "decision": "promote",
        "checks": {check["name"]: check["status"] for check in full_report["checks"]},
    }
    logged = registry.client.download_artifacts(v1.run_id, "gate/gate.json", str(project.root))
    assert json.loads(Path(logged).read_text()) == full_report
    tracking = json.loads((project.root / "reports/tracking.json").read_text())
    assert v1.run_id == tracking["runs"]["candidate"]["run_id"]
    assert registry.alias(CHAMPION) is None

    assert "champion (none) -> v1" in ok("promote", "--to", "champion")
    assert registry.champion() == 1
    assert registry.history() == [1]

    retrain(project, n_estimators=60)
    assert "challenger v1 -> v2" in ok("promote")
    report = json.loads((project.root / "reports/gate.json").read_text())
    champion_check = next(c for c in report["checks"] if c["name"] == "not_worse_than_champion")
    assert champion_check["status"] == "pass"
    assert champion_check["value"]["champion_version"] == 1
    assert registry.champion() == 1  # registering moves only the challenger
    assert "champion v1 -> v2" in ok("promote", "--to", "champion")
    assert registry.champion() == 2
    assert registry.history() == [1, 2]

    assert "champion v2 -> v1" in ok("rollback")
    assert registry.champion() == 1
    assert registry.alias(CHALLENGER) == 2
    assert registry.history() == [1]

    before = registry.state()
    message = refused("rollback")
    assert "no earlier champion" in message
    assert "--to" in message
    assert registry.state() == before

    assert "champion v1 -> v2" in ok("rollback", "--to", "2")
    assert registry.champion() == 2
    assert registry.history() == [1, 2]

    lines = ok("models").splitlines()
    assert lines[0].split()[:2] == ["version", "aliases"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"1", "2"}
    assert rows["1"][1:3] == ["-", "promote"]
    assert rows["2"][1:3] == ["challenger,champion", "promote"]


def test_promotion_of_a_rejected_candidate_changes_nothing(interaction_project, registry):
    ok("promote")
    ok("promote", "--to", "champion")
    ok("track")  # the same models as a new run: a candidate the registry has not seen
    before = registry.state()
    assert before == ([1], 1, 1, [1])

    interaction_project.write_params(gate={"min_improvement": 10})
    message = refused("promote")
    assert "gate rejected" in message
    assert "beats_baseline" in message
    assert "nothing was registered" in message
    assert registry.state() == before
    assert json.loads((interaction_project.root / "reports/gate.json").read_text())[
        "failed_checks"
    ] == ["beats_baseline"]


def test_only_a_version_that_passed_the_gate_becomes_champion(interaction_project, registry):
    message = refused("promote", "--to", "champion")
    assert "run `promote` first" in message

    rejected = {"decision": "reject", "failed_checks": ["latency_p95"], "checks": []}
    assert register_candidate(interaction_project.params(), rejected)["version"] == 1
    for args in (("--to", "champion"), ("--to", "champion", "--version", "1")):
        message = refused("promote", *args)
        assert "did not pass the gate" in message
        assert "latency_p95" in message
        assert registry.alias(CHAMPION) is None

    assert "has no version 7" in refused("promote", "--to", "champion", "--version", "7")
    assert "--to champion" in refused("promote", "--version", "1")
    assert registry.alias(CHAMPION) is None


def test_models_before_anything_is_registered(interaction_project):
    assert "no registered versions yet" in ok("models")


def test_unreachable_tracking_server_is_one_clear_error(interaction_project, monkeypatch):
    """With the retry defaults of tracking.connect a dead server fails within seconds."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    start = time.perf_counter()
    message = refused("promote")
    assert time.perf_counter() - start < 30
    assert "cannot use the MLflow tracking store at http://127.0.0.1:9" in message
    assert not (interaction_project.root / "reports/gate.json").exists()

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the rest, without waiting
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    for command in (("promote", "--to", "champion"), ("rollback",), ("models",)):
        assert "http://127.0.0.1:9" in refused(*command), command
