"""The registry commands: promote, promote --to champion, rollback, models, and every refusal.

Each test starts from a copy of a DVC-reproduced project whose candidate clearly beats the
baseline and is logged to MLflow, in a registry of its own that has no version yet.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from {{ cookiecutter.package_name }}.cli import app
from {{ cookiecutter.package_name }}.promotion import gate
from {{ cookiecutter.package_name }}.promotion.registry import (
    CHALLENGER,
    CHAMPION,
    TAG_PREVIOUS,
    model_name,
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


def dvc(project, command: str, **options) -> None:
    """A DVC command through its Python API, e.g. dvc(project, "commit", force=True)."""
    from dvc.repo import Repo

    with Repo(str(project.root)) as repo:
        getattr(repo, command)(**options)


class Registry:
    """Read-only views of the registered model, for assertions."""

    def __init__(self, name: str) -> None:
        self.name = name
        uri = os.environ["MLFLOW_TRACKING_URI"]  # explicit: set_tracking_uri outlives a command
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def alias(self, alias: str) -> int | None:
        try:
            found = self.client.get_model_version_by_alias(self.name, alias)
        except Exception:
            return None
        return int(found.version)

    def versions(self) -> list[int]:
        found = self.client.search_model_versions(f"name='{self.name}'")
        return sorted(int(version.version) for version in found)

    def tags(self, version: int) -> dict[str, str]:
        return self.client.get_model_version(self.name, str(version)).tags

    def state(self) -> tuple:
        versions = self.versions()
        previous = {v: self.tags(v).get(TAG_PREVIOUS) for v in versions}
        return versions, self.alias(CHALLENGER), self.alias(CHAMPION), previous


@pytest.fixture
def registry(interaction_project) -> Registry:
    return Registry(model_name(interaction_project.params()))


def retrain(project, **candidate_changes) -> None:
    """A new candidate: change its settings and reproduce, as a user would."""
    candidate = {**project.settings["train"]["candidate"], **candidate_changes}
    project.write_params(train={"candidate": candidate})
    dvc(project, "reproduce")


def two_champions(project, registry) -> None:
    """v1 then v2 promoted to champion through the commands."""
    ok("promote")
    ok("promote", "--to", "champion")
    retrain(project, n_estimators=60)
    ok("promote")
    ok("promote", "--to", "champion")
    assert registry.alias(CHAMPION) == 2


# the happy path


def test_promote_then_champion_then_rollback(interaction_project, registry):
    project = interaction_project
    assert "challenger (none) -> v1" in ok("promote")
    tags = registry.tags(1)
    manifest = json.loads((project.root / "models/manifest.json").read_text())
    assert tags["artifact.sha256"] == manifest["models"]["candidate"]["sha256"]
    assert tags["model.kind"] == "lightgbm" and tags["model.role"] == "candidate"
    assert tags["gate.decision"] == "promote"
    assert tags["git.dirty"] in {"true", "false", "unknown"}
    tracking = json.loads((project.root / "reports/tracking.json").read_text())
    version = registry.client.get_model_version(registry.name, "1")
    assert version.run_id == tracking["runs"]["candidate"]["run_id"]
    assert registry.alias(CHAMPION) is None

    assert "champion (none) -> v1" in ok("promote", "--to", "champion")
    message = refused("promote", "--to", "champion")
    assert "already the champion: nothing newer was registered" in message
    retrain(project, n_estimators=60)
    assert "challenger v1 -> v2" in ok("promote")
    assert registry.alias(CHAMPION) == 1  # registering moves only the challenger
    assert "champion v1 -> v2" in ok("promote", "--to", "champion")
    assert registry.tags(2)[TAG_PREVIOUS] == "1"

    assert "champion v2 -> v1" in ok("rollback")
    assert registry.alias(CHAMPION) == 1
    assert registry.alias(CHALLENGER) == 2

    before = registry.state()
    message = refused("rollback")
    assert "replaced no earlier version" in message and "--to" in message
    assert registry.state() == before

    assert "champion v1 -> v2" in ok("rollback", "--to", "2")
    assert registry.alias(CHAMPION) == 2

    lines = ok("models").splitlines()
    assert lines[0].split() == [
        "version",
        "aliases",
        "kind",
        "gate",
        "replaced",
        "git",
        "commit",
        "override",
    ]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["1"][1:5] == ["-", "lightgbm", "promote", "-"]
    assert rows["2"][1:5] == ["challenger,champion", "lightgbm", "promote", "v1"]


def test_promoting_the_same_artifact_twice_registers_it_once(interaction_project, registry):
    ok("promote")
    assert "already registered" in ok("promote")
    assert registry.versions() == [1]


def test_rolling_back_twice_walks_two_steps_back(interaction_project, registry):
    two_champions(interaction_project, registry)
    retrain(interaction_project, n_estimators=45)
    ok("promote")
    ok("promote", "--to", "champion")
    assert registry.alias(CHAMPION) == 3
    assert "champion v3 -> v2" in ok("rollback")
    assert "champion v2 -> v1" in ok("rollback")
    assert "replaced no earlier version" in refused("rollback")


def project_files(project) -> dict[str, bytes]:
    """Every file of the project but the MLflow store's and DVC's own (what git would track)."""
    skipped = {".dvc", "src", "mlruns"}
    return {
        path.relative_to(project.root).as_posix(): path.read_bytes()
        for path in sorted(project.root.rglob("*"))
        if path.is_file()
        and path.relative_to(project.root).parts[0] not in skipped
        and not path.name.startswith("mlflow.db")
    }


def test_gate_and_the_registry_commands_rewrite_no_file(interaction_project, registry):
    """`gate`, `promote`, `rollback` and `models` read the pipeline's outputs and move aliases:
    no file changes and `dvc status` stays clean."""
    from dvc.repo import Repo

    before = project_files(interaction_project)
    ok("gate")
    ok("promote")
    ok("promote", "--to", "champion")
    ok("models")
    refused("rollback")
    assert project_files(interaction_project) == before
    with Repo(str(interaction_project.root)) as repo:
        assert repo.status() == {}


# defect 1 and 2: the gate and the registry must look at the same artifact


def test_hand_edited_metrics_are_refused(interaction_project, registry):
    """A rejected candidate's intervals edited by hand: dvc status shows it, promote refuses."""
    path = interaction_project.root / "metrics/intervals.json"
    intervals = json.loads(path.read_text())
    intervals["candidate_vs_baseline"]["roc_auc"]["lower"] = 0.5
    path.write_text(json.dumps(intervals))
    message = refused("promote")
    assert "not what dvc.lock records" in message
    assert "metrics/intervals.json" in message
    assert "dvc checkout" in message
    assert registry.versions() == []


def test_outputs_from_commands_run_by_hand_are_refused(interaction_project, registry):
    """train + `evaluate --no-track` by hand: the tracking report still names the earlier run."""
    retrain_by_hand = {**interaction_project.settings["train"]["candidate"], "n_estimators": 45}
    interaction_project.write_params(train={"candidate": retrain_by_hand})
    ok("train")
    ok("evaluate", "--no-track")
    ok("gate", "--write")
    message = refused("promote")
    assert "not what dvc.lock records" in message and "dvc repro" in message
    assert registry.versions() == []

    # Even with DVC told to accept the files, the MLflow run is the earlier model's.
    dvc(interaction_project, "commit", force=True)
    message = refused("promote")
    assert "not the" in message and "the gate judged" in message
    assert "uv run dvc repro --force --single-item evaluate" in message
    assert registry.versions() == []
    dvc(interaction_project, "reproduce", targets=["evaluate"], force=True, single_item=True)
    assert "challenger (none) -> v1" in ok("promote")


def test_a_swapped_model_file_is_refused(interaction_project, registry):
    models = interaction_project.root / "models"
    (models / "candidate.joblib").write_bytes((models / "baseline.joblib").read_bytes())
    message = refused("promote")
    assert "models modified" in message
    assert registry.versions() == []
    # The same check without DVC's: the gate's hash binds the file itself.
    from {{ cookiecutter.package_name }}.core.errors import PipelineError
    from {{ cookiecutter.package_name }}.core.records import GateReport
    from {{ cookiecutter.package_name }}.promotion.preconditions import judged_artifact

    report = GateReport.model_validate_json(
        (interaction_project.root / "reports/gate.json").read_text()
    )
    with pytest.raises(PipelineError, match=r"candidate\.joblib has SHA-256 .* the gate judged"):
        judged_artifact(interaction_project.params(), report)


def test_a_corrupted_model_file_is_a_message_not_a_pickle_traceback(interaction_project):
    path = interaction_project.root / "models/candidate.joblib"
    path.write_bytes(path.read_bytes()[:200] + b"\x00garbage")
    message = refused("gate", "--write")
    assert "was changed or corrupted" in message
    assert "dvc checkout models" in message


# defect 3: promote --to champion compares with the live champion


def test_a_worse_version_cannot_replace_the_champion(interaction_project, registry):
    project = interaction_project
    retrain(project, n_estimators=60)  # a strong champion (early stopping keeps the rest equal)
    ok("promote")
    ok("promote", "--to", "champion")
    # A much weaker candidate (the fixture's 30 trees), registered while the gate was lenient
    # (max_regression 1.0), then the rule tightened again: moving champion re-checks it
    # against v1 with today's rule.
    project.write_params(gate={"max_regression": 1.0})
    retrain(project, n_estimators=30)
    ok("promote")
    assert registry.alias(CHALLENGER) == 2
    project.write_params(gate={"max_regression": 0.005})
    dvc(project, "reproduce")
    before = registry.state()
    message = refused("promote", "--to", "champion", "--version", "2")
    assert "worse than the champion" in message and "--override" in message
    assert registry.state() == before

    message = refused("promote", "--to", "champion", "--override")
    assert "--reason" in message
    out = ok("promote", "--to", "champion", "--override", "--reason", "incident 42: rollback test")
    assert "champion v1 -> v2 (override recorded)" in out
    tags = registry.tags(2)
    assert tags["override.reason"] == "incident 42: rollback test"
    assert tags["override.action"] == "promote"
    assert tags[TAG_PREVIOUS] == "1"
    assert "incident 42" in ok("models")


def test_promote_to_champion_reuses_evaluates_scores_of_this_runs_model(
    interaction_project, registry, monkeypatch
):
    """Only the champion predicts the holdout: v2, this run's model, has the scores evaluate
    wrote (reports/predictions.parquet, checked against its SHA-256)."""
    ok("promote")
    ok("promote", "--to", "champion")
    retrain(interaction_project, n_estimators=60)
    ok("promote")
    predicted = []
    real = gate.version_scores

    def counting(params, registered, *args):
        predicted.append(registered.version)
        return real(params, registered, *args)

    monkeypatch.setattr(gate, "version_scores", counting)
    assert "champion v1 -> v2" in ok("promote", "--to", "champion")
    assert predicted == [1]


def test_only_a_version_that_passed_the_gate_becomes_champion(interaction_project, registry):
    message = refused("promote", "--to", "champion")
    assert "promote` first" in message
    assert "has no version 7" in refused("promote", "--to", "champion", "--version", "7")
    assert "goes with --to champion" in refused("promote", "--version", "1")
    assert registry.alias(CHAMPION) is None


# defect 4: rollback --to needs an override for a version that never passed the gate


def test_rollback_to_a_rejected_version_needs_a_recorded_override(interaction_project, registry):
    two_champions(interaction_project, registry)
    registry.client.set_model_version_tag(registry.name, "1", "gate.decision", "reject")
    before = registry.state()
    message = refused("rollback", "--to", "1")
    assert "did not pass the gate" in message and "--override --reason" in message
    # plain rollback (to the version champion replaced) checks the version too
    message = refused("rollback")
    assert "did not pass the gate" in message and "rollback --to 1 --override" in message
    assert registry.state() == before
    assert "--reason goes with --override" in refused("rollback", "--to", "1", "--reason", "x")
    out = ok("rollback", "--to", "1", "--override", "--reason", "v2 corrupts invoices")
    assert "champion v2 -> v1" in out
    tags = registry.tags(1)
    assert tags["override.action"] == "rollback"
    assert tags["override.reason"] == "v2 corrupts invoices"
    assert tags["override.by"]


# defect 5: a move is all-or-nothing, and a lost race is detected


def test_a_failure_before_the_alias_moves_changes_nothing(
    interaction_project, registry, monkeypatch
):
    """The history is written on the new holder before the alias moves, so a failure between
    the two leaves a consistent state: the next rollback goes v2 -> v1, never v1 -> v1."""
    two_champions(interaction_project, registry)

    def fail(*args, **kwargs):
        raise OSError("connection reset by peer")

    with monkeypatch.context() as patch:
        patch.setattr(MlflowClient, "set_registered_model_alias", fail)
        message = refused("rollback")
    assert "connection reset by peer" in message
    assert "uv run {{ cookiecutter.package_name }} rollback" in message
    assert registry.alias(CHAMPION) == 2
    assert "champion v2 -> v1" in ok("rollback")  # not "v1 -> v1"


def test_a_move_raced_by_another_command_is_refused(interaction_project, registry, monkeypatch):
    project = interaction_project
    ok("promote")
    ok("promote", "--to", "champion")
    retrain(project, n_estimators=60)
    ok("promote")
    retrain(project, n_estimators=45)
    ok("promote")  # v3
    original = gate.compare_scores

    def compare_while_someone_moves_champion(*args, **kwargs):
        registry.client.set_registered_model_alias(registry.name, CHAMPION, "3")
        return original(*args, **kwargs)

    monkeypatch.setattr(gate, "compare_scores", compare_while_someone_moves_champion)
    message = refused("promote", "--to", "champion", "--version", "2")
    assert "champion moved from v1 to v3" in message
    assert registry.alias(CHAMPION) == 3
    assert TAG_PREVIOUS not in registry.tags(2)


def test_two_concurrent_moves_do_not_both_succeed(interaction_project, registry):
    project = interaction_project
    ok("promote")
    ok("promote", "--to", "champion")
    retrain(project, n_estimators=60)
    ok("promote")
    retrain(project, n_estimators=45)
    ok("promote")  # v2 and v3 registered, v1 champion
    command = [
        *(sys.executable, "-m", "{{ cookiecutter.package_name }}"),
        *("promote", "--to", "champion", "--version"),
    ]
    env = dict(os.environ)
    processes = [
        subprocess.Popen(
            [*command, v],
            cwd=project.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in ("2", "3")
    ]
    outcomes = [process.communicate(timeout=300) for process in processes]
    codes = [process.returncode for process in processes]
    assert sorted(codes) == [0, 1], outcomes
    loser = outcomes[codes.index(1)][1]
    assert "champion moved from v1 to" in loser
    winner = 2 if codes[0] == 0 else 3
    assert registry.alias(CHAMPION) == winner
    assert registry.tags(winner)[TAG_PREVIOUS] == "1"


# defect 6: store errors


def test_a_deleted_store_is_named_and_nothing_is_created(interaction_project, registry):
    ok("promote")
    ok("promote", "--to", "champion")
    store = interaction_project.root / "mlflow.db"
    store.unlink()
    for command in (("promote",), ("promote", "--to", "champion"), ("rollback",), ("models",)):
        message = refused(*command)
        assert "does not exist" in message, command
        assert "no earlier" not in message
        assert not store.exists(), f"{command} created an empty store"


def test_a_mistyped_store_uri_fails_closed(interaction_project, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlfow.db")
    message = refused("promote")
    assert "sqlite:///mlfow.db" in message
    assert not (interaction_project.root / "mlfow.db").exists()


def test_store_errors_advise_the_command_that_failed(interaction_project, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    for command, retry in (
        (("promote", "--to", "champion"), "promote"),
        (("rollback",), "rollback"),
        (("models",), "models"),
    ):
        message = refused(*command)
        assert "http://127.0.0.1:9" in message, command
        assert f"uv run {{ cookiecutter.package_name }} {retry}" in message
        assert "uv run {{ cookiecutter.package_name }} track" not in message


@pytest.fixture
def silent_server():
    """A server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_server_that_never_answers_fails_within_the_configured_bound(
    interaction_project, silent_server, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", silent_server)
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    interaction_project.write_params(mlflow={"request_timeout_seconds": 2, "request_retries": 1})
    start = time.perf_counter()
    message = refused("models")
    elapsed = time.perf_counter() - start
    assert silent_server in message
    assert elapsed < 2 * (1 + 1) + 10, elapsed  # timeout x attempts, plus backoff and slack


def test_a_quote_in_the_registered_model_name_is_a_settings_error(interaction_project):
    interaction_project.write_params(mlflow={"registered_model": "churn'model"})
    message = refused("models")
    assert "mlflow.registered_model" in message


def test_uncommitted_changes_are_recorded(interaction_project, registry):
    root = interaction_project.root
    notes = Path(root / "NOTES.md")
    notes.write_text("first\n")
    identity = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e.x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e.x",
    }
    for command in (["init", "-q"], ["add", "NOTES.md"], ["commit", "-qm", "x"]):
        subprocess.run(["git", *command], cwd=root, check=True, env={**os.environ, **identity})
    notes.write_text("edited after the commit\n")
    ok("promote")
    assert registry.tags(1)["git.dirty"] == "true"


# issue 16: no path to champion or to the service for a model the gate did not approve


def invoke(*args: str):
    return runner.invoke(app, list(args))


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def test_a_side_params_file_is_refused_by_every_promotion_command(interaction_project, registry):
    """--params OTHER.yaml read side thresholds while dvc status checked only params.yaml."""
    other = interaction_project.root / "other.yaml"
    other.write_text((interaction_project.root / "params.yaml").read_text())
    for command in (
        ["promote"],
        ["promote", "--to", "champion"],
        ["gate", "--write"],
        ["gate"],
        ["export", "--proposed"],
    ):
        result = invoke(*command, "--params", str(other))
        assert result.exit_code == 1, result.output
        assert "promotion uses the rules the pipeline ran with" in result.stderr
        assert "Traceback" not in result.output
    assert registry.versions() == []


def test_a_temporary_edit_of_the_rules_cannot_move_champion(interaction_project, registry):
    """max_regression: 10 in params.yaml let a worse version over the champion; reverting the
    file removed the trace. The rules are those dvc.lock bound to the gate, and are recorded."""
    project = interaction_project
    ok("promote")
    assert json.loads(registry.tags(1)["gate.rules"])["gate"]["max_regression"] == 0.2
    text = (project.root / "params.yaml").read_text()
    project.write_params(gate={"max_regression": 10.0})
    before = registry.state()
    message = refused("promote", "--to", "champion")
    assert "not what dvc.lock records" in message and "params.yaml" in message
    assert registry.state() == before
    # the rule check on its own, as promote applies it (whatever file was read)
    from {{ cookiecutter.package_name }}.core.errors import PipelineError
    from {{ cookiecutter.package_name }}.promotion.preconditions import require_bound_rules

    with pytest.raises(PipelineError, match=r"gate\.max_regression: 0\.2 in dvc\.lock, now 10"):
        require_bound_rules(project.params(), "promote")
    (project.root / "params.yaml").write_text(text)
    ok("promote", "--to", "champion")
    assert json.loads(registry.tags(1)["champion.rules"])["gate"]["max_regression"] == 0.2


def shuffled_retrain(project) -> None:
    """The candidate and baseline retrained on shuffled labels: worse than guessing."""
    train_file = project.root / "data/processed/train.parquet"
    train = __import__("pandas").read_parquet(train_file)
    rng = __import__("numpy").random.default_rng(0)
    train["target"] = rng.permutation(train["target"].to_numpy())
    train.to_parquet(train_file, index=False)
    ok("train")
    ok("evaluate")
    ok("gate", "--write")


def test_edited_reports_committed_to_dvc_cannot_promote_or_export_a_worse_model(
    interaction_project, registry
):
    """Edited metrics plus `dvc commit` made a model trained on shuffled labels champion."""
    project = interaction_project
    shuffled_retrain(project)
    gate_json = project.root / "reports/gate.json"
    assert json.loads(gate_json.read_text())["decision"] == "reject"
    manifest = json.loads((project.root / "models/manifest.json").read_text())

    def approve(report):
        candidate = manifest["models"]["candidate"]
        report.update(decision="promote", proposed="candidate", failed_checks=[])
        report["proposed_model"] = {
            "role": "candidate",
            "kind": candidate["kind"],
            "file": "models/candidate.joblib",
            "sha256": candidate["sha256"],
        }

    edit_json(gate_json, approve)
    intervals = project.root / "metrics/intervals.json"
    edit_json(intervals, lambda i: i["candidate_vs_baseline"]["roc_auc"].update(lower=0.3))
    dvc(project, "commit", force=True)
    for command in (["promote"], ["promote", "--to", "champion", "--override", "--reason", "x"]):
        message = refused(*command)
        assert "the gate rejects this run now" in message
    message = refused("export", "--proposed")
    assert "the gate rejected this run" in message
    assert registry.versions() == []


def test_export_proposed_checks_what_promote_checks(interaction_project):
    """A hand-edited gate.json pinned the dummy floor as "the approved baseline"."""
    project = interaction_project
    gate_json = project.root / "reports/gate.json"
    floor = json.loads((project.root / "models/manifest.json").read_text())["models"]["floor"]

    def pin_floor(report):
        report["proposed"] = "baseline"
        report["proposed_model"] = {**report["proposed_model"], "sha256": floor["sha256"]}

    edit_json(gate_json, pin_floor)
    message = refused("export", "--proposed")
    assert "not what dvc.lock records" in message
    dvc(project, "commit", force=True)
    message = refused("export", "--proposed")
    assert "does not name the model the gate proposes now" in message


def register_by_hand(registry, project) -> int:
    """A version created with MLflow directly (no gate record), given champion."""
    tracking = json.loads((project.root / "reports/tracking.json").read_text())
    run = tracking["runs"]["baseline"]
    if registry.client.search_registered_models(f"name='{registry.name}'") == []:
        registry.client.create_registered_model(registry.name)
    version = registry.client.create_model_version(
        registry.name, source=run["model_uri"], run_id=run["run_id"]
    )
    registry.client.set_registered_model_alias(registry.name, CHAMPION, version.version)
    return int(version.version)


def test_a_version_registered_outside_promote_is_never_served_or_trusted(
    interaction_project, registry
):
    version = register_by_hand(registry, interaction_project)
    message = refused("export", "--alias", "champion")
    assert f"version {version} carries no gate record" in message
    # the gate cannot compare with a champion it cannot verify: a failure, not a pass
    result = run("gate")
    assert result.exit_code == 1
    assert "carries no gate record" in result.stdout
    assert "promote --to champion --override --reason" in result.stdout


def test_a_swapped_stored_artifact_is_refused_wherever_the_version_is_used(
    interaction_project, registry
):
    ok("promote")
    ok("promote", "--to", "champion")
    version = registry.client.get_model_version(registry.name, "1")
    root = registry.client.get_run(version.run_id).info.artifact_uri.removeprefix("file://")
    stored = Path(root) / "judged" / "candidate.joblib"
    assert stored.is_file()
    baseline = interaction_project.root / "models/baseline.joblib"
    judged = stored.read_bytes()
    # The copied projects share the trained project's artifact store: put the bytes back.
    try:
        stored.write_bytes(baseline.read_bytes())
        message = refused("export", "--alias", "champion")
        assert "changed in the store after registration" in message
        result = run("gate")
        assert result.exit_code == 1 and "changed in the store" in result.stdout
    finally:
        stored.write_bytes(judged)


def test_a_champion_that_used_a_now_dropped_column_is_still_compared(interaction_project, registry):
    """Was: after `data.drop: [noise]` the split wrote its holdout without 'noise', so champion
    v1, which uses it, could not score it: the gate failed not_worse_than_champion and making
    the new model champion needed an override. The split keeps the dropped columns (never a
    feature), so the gate and `promote --to champion` compare the two on the same rows."""
    project = interaction_project
    ok("promote")
    ok("promote", "--to", "champion")
    project.write_params(data={**project.settings["data"], "drop": ["noise"]})
    dvc(project, "reproduce")
    manifest = json.loads((project.root / "models/manifest.json").read_text())
    assert "noise" not in manifest["numeric"] + manifest["categorical"]
    report = json.loads((project.root / "reports/gate.json").read_text())
    check = next(c for c in report["checks"] if c["name"] == "not_worse_than_champion")
    assert check["status"] == "pass", check["detail"]
    assert check["value"]["champion_version"] == 1
    assert "on all" in check["detail"] and "same split" in check["detail"]
    assert report["decision"] == "promote"
    ok("promote")
    ok("promote", "--to", "champion")
    assert registry.alias(CHAMPION) == 2
    assert "override.reason" not in registry.tags(2)


def without_column(project, column: str) -> None:
    """`column` removed from the data file and, as validation then advises, from schema.yaml."""
    project.write_data(project.frame.drop(columns=column))
    path = project.root / "schema.yaml"
    contract = yaml.safe_load(path.read_text(encoding="utf-8"))
    del contract["columns"][column]
    path.write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")


def test_a_champion_that_cannot_be_compared_needs_one_recorded_override(
    interaction_project, registry
):
    """After a feature is removed from the data, the champion cannot score the new holdout: the
    gate rejects, and the one documented command moves past it with the reason recorded (a
    skip never counts as a pass)."""
    project = interaction_project
    ok("promote")
    ok("promote", "--to", "champion")
    without_column(project, "noise")
    dvc(project, "reproduce")
    report = json.loads((project.root / "reports/gate.json").read_text())
    assert report["decision"] == "reject"
    assert report["failed_checks"] == ["not_worse_than_champion"]
    detail = next(c["detail"] for c in report["checks"] if c["name"] == "not_worse_than_champion")
    assert "feature columns this holdout does not have: noise" in detail  # not an MLflow dump
    message = refused("promote")
    assert "promote --to champion --override --reason" in message
    assert registry.versions() == [1]
    out = ok("promote", "--to", "champion", "--override", "--reason", "noise column retired")
    assert "champion v1 -> v2 (override recorded)" in out
    tags = registry.tags(2)
    assert tags["gate.decision"] == "reject"
    assert tags["override.reason"] == "noise column retired"
    assert json.loads(tags["override.history"])[-1]["reason"] == "noise column retired"
    # an override never sets aside a model's own failures
    project.write_params(gate={"max_model_size_mb": 0.000001})
    dvc(project, "reproduce")
    message = refused("promote", "--to", "champion", "--override", "--reason", "x")
    assert "never a model that fails its own checks" in message


def test_rules_written_by_dvc_in_exponent_notation_match_the_settings():
    """DVC writes 1e-06 to dvc.lock, which YAML 1.1 (PyYAML) reads as text."""
    from {{ cookiecutter.package_name }}.promotion.preconditions import _differences

    assert _differences({"max_model_size_mb": "1e-06"}, {"max_model_size_mb": 1e-06}, "gate") == []
    assert _differences({"max_model_size_mb": "1e-06"}, {"max_model_size_mb": 2e-06}, "gate")
    assert _differences({"kind": "x"}, {"kind": "y"}, "train") == [
        "train.kind: 'x' in dvc.lock, now 'y'"
    ]


def test_a_second_override_keeps_the_first_reason():
    from {{ cookiecutter.package_name }}.promotion.registry import override_tags

    first = override_tags("promote", "incident 41")
    second = override_tags("rollback", "incident 42", existing=first)
    history = json.loads(second["override.history"])
    assert [entry["reason"] for entry in history] == ["incident 41", "incident 42"]
    assert second["override.reason"] == "incident 42"


def test_a_gated_version_without_a_run_is_a_message(tmp_path):
    """A version whose gate tags were copied onto a model registered from a file (no run) is
    refused by name: there is no judged artifact to fetch."""
    from types import SimpleNamespace

    from {{ cookiecutter.package_name }}.core.errors import PipelineError
    from {{ cookiecutter.package_name }}.promotion.registry import (
        TAG_DECISION,
        TAG_SHA,
        Store,
        load_registered,
    )

    class Client:
        def get_model_version(self, name: str, version: str) -> SimpleNamespace:
            tags = {TAG_SHA: "0" * 64, TAG_DECISION: "promote"}
            return SimpleNamespace(name=name, version=version, run_id=None, tags=tags)

    store = Store(Client(), "sqlite:///mlflow.db", "churn", "promote")  # type: ignore[arg-type]
    with pytest.raises(PipelineError, match="version 3 records no MLflow run"):
        load_registered(store, 3, tmp_path)
