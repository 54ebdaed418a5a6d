"""Bind the gate's verdict to one artifact, so that what `promote` registers is what was judged.

Five records must agree before anything is registered or exported, and each disagreement is
refused with the command that fixes it:

1. DVC: every pipeline output is what `dvc.lock` records (`dvc status` is clean), so no hand
   edit of models or reports, and no changed setting that was not reproduced;
2. the rules: the settings that decide promotion are the ones `dvc.lock` recorded for the gate
   stage, read from `params.yaml` (never a side file given with `--params`);
3. the verdict: the gate's report, rebuilt now from the model files and the holdout with those
   rules (gate.build_report), proposes a model; metric files are never trusted for it;
4. the file: `models/<role>.joblib`, the manifest and the recorded `reports/gate.json` all have
   the SHA-256 of the model the rebuilt report proposes;
5. the MLflow run that `reports/tracking.json` names was logged from that same file (its tag
   `artifact.sha256`), in the store that is configured now.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from {{ cookiecutter.package_name }}.core.artifacts import (
    PROPOSABLE,
    file_sha256,
    load_manifest,
)
from {{ cookiecutter.package_name }}.core.config import Params
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.records import (
    GateReport,
    TrackingReport,
    read_record,
)
from {{ cookiecutter.package_name }}.promotion.registry import TAG_SHA, Artifact, Store


def _describe(changes: Any) -> str:
    """One DVC status entry, e.g. {'changed outs': {'metrics/x.json': 'modified'}}, as text."""
    if isinstance(changes, dict):
        return "; ".join(f"{key} {_describe(value)}" for key, value in changes.items())
    if isinstance(changes, list):
        return "; ".join(_describe(item) for item in changes)
    return str(changes)


def stale_outputs(root: Path = Path()) -> list[str]:
    """What `dvc status` reports, one line per stage; empty when the outputs match dvc.lock."""
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo
    from dvc.rwlock import RWLockFileCorruptedError

    try:
        with Repo(str(root)) as repo:
            status = repo.status()
    except NotDvcRepoError:
        raise PipelineError(
            "this is not a DVC project (no .dvc/ here): run commands from the project's root."
        ) from None
    except RWLockFileCorruptedError:  # a dvc command killed mid-write, or a full disk
        raise PipelineError(
            "DVC's lock file .dvc/tmp/rwlock is corrupt, so every dvc command fails: make sure "
            "no dvc command is running, then delete it (`rm .dvc/tmp/rwlock`); DVC recreates it."
        ) from None
    except DvcException as error:
        raise PipelineError(f"cannot read the pipeline's state (dvc status): {error}") from None
    return [f"{stage}: {_describe(changes)}" for stage, changes in status.items()]


def require_current_pipeline(command: str) -> None:
    stale = stale_outputs()
    if stale:
        raise PipelineError(
            f"refusing to {command}: the pipeline's files are not what dvc.lock records, so the "
            "gate report may not describe them:\n  "
            + "\n  ".join(stale)
            + "\nRun `uv run dvc repro` (or `uv run dvc checkout` to undo hand edits of outputs)."
        )


PROMOTION_PARAMS = Path("params.yaml")
LOCK_FILE = Path("dvc.lock")


def require_project_params(params_file: Path, command: str) -> None:
    """Promotion reads the rules the pipeline ran with: params.yaml, whose values DVC checks."""
    if params_file.resolve() != PROMOTION_PARAMS.resolve():
        raise PipelineError(
            f"refusing to {command} with --params {params_file}: promotion uses the rules the "
            f"pipeline ran with, which are in {PROMOTION_PARAMS} (checked against dvc.lock). "
            f"Put the settings in {PROMOTION_PARAMS}, run `uv run dvc repro`, then {command}."
        )


def _differences(recorded: Any, current: Any, key: str) -> list[str]:
    """Dotted keys where `current` differs from what dvc.lock recorded (numbers by value)."""
    if isinstance(recorded, dict):
        if not isinstance(current, dict):
            return [key]
        return [
            found
            for name, value in recorded.items()
            for found in _differences(value, current.get(name), f"{key}.{name}")
        ]
    if recorded == current or _same_number(recorded, current):
        return []
    return [f"{key}: {recorded!r} in dvc.lock, now {current!r}"]


def _same_number(recorded: Any, current: Any) -> bool:
    """PyYAML reads YAML 1.1, where DVC's `1e-06` (no dot) is text: compare it as a number."""
    if (
        isinstance(recorded, str)
        and isinstance(current, int | float)
        and not isinstance(current, bool)
    ):
        try:
            return float(recorded) == float(current)
        except ValueError:
            return False
    return False


def require_bound_rules(params: Params, command: str, stage: str = "gate") -> None:
    """The settings loaded now are the ones dvc.lock recorded for `stage`: a temporary edit of
    params.yaml (say gate.max_regression) cannot loosen a promotion and leave no trace."""
    import yaml

    if not LOCK_FILE.is_file():
        raise PipelineError(f"no {LOCK_FILE}: the pipeline has not run. Run `uv run dvc repro`.")
    lock = yaml.safe_load(LOCK_FILE.read_text(encoding="utf-8")) or {}
    recorded = lock.get("stages", {}).get(stage, {}).get("params", {}).get("params.yaml")
    if not recorded:
        raise PipelineError(
            f"{LOCK_FILE} records no settings for the {stage} stage: run `uv run dvc repro`."
        )
    current = params.model_dump(by_alias=True, mode="json")
    differ = []
    for key, value in recorded.items():
        node: Any = current
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        differ += _differences(value, node, key)
    if differ:
        raise PipelineError(
            f"refusing to {command}: the settings differ from those the gate ran with "
            f"({LOCK_FILE}):\n  " + "\n  ".join(differ) + "\nRestore params.yaml, or run "
            f"`uv run dvc repro` so the gate judges with the new settings, then {command}."
        )


def judge_now(params: Params, store: Store | None, command: str) -> GateReport:
    """The gate's report rebuilt now, after checking the pipeline and the rules (1-4 above)."""
    from {{ cookiecutter.package_name }}.promotion.gate import build_report

    require_current_pipeline(command)
    require_bound_rules(params, command)
    live = GateReport.model_validate(build_report(params, store))
    recorded = read_record(params.paths.gate_report, GateReport)
    judged = live.proposed_model.sha256 if live.proposed_model else None
    if judged and (recorded.proposed_model is None or recorded.proposed_model.sha256 != judged):
        raise PipelineError(
            f"{params.paths.gate_report} does not name the model the gate proposes now "
            f"(SHA-256 {judged[:12]}): it was edited or is stale. Restore it with "
            "`uv run dvc checkout` or rerun `uv run dvc repro`."
        )
    return live


def judged_artifact(params: Params, gate_report: GateReport) -> tuple[str, str]:
    """(role, SHA-256) of the model the gate approved, checked against the files on disk."""
    if gate_report.decision != "promote" or gate_report.proposed_model is None:
        failed = ", ".join(gate_report.failed_checks) or "unknown"
        raise PipelineError(
            f"the gate rejected this run (failed {failed}); nothing was registered. "
            f"See {params.paths.gate_markdown}."
        )
    role, judged = gate_report.proposed_model.role, gate_report.proposed_model.sha256
    if role not in PROPOSABLE:
        raise PipelineError(f"the gate report proposes the {role}, which is never served.")
    manifest = load_manifest(params.paths.models)
    entry = manifest.models.get(role)
    if entry is None or entry.sha256 != judged:
        raise PipelineError(
            f"{params.paths.gate_report} judged a {role} with SHA-256 {judged[:12]}, but the "
            f"manifest now lists {entry.sha256[:12] if entry else 'none'}: the report is stale. "
            "Run `uv run dvc repro`."
        )
    actual = file_sha256(params.paths.models / entry.file)
    if actual != judged:
        raise PipelineError(
            f"{params.paths.models / entry.file} has SHA-256 {actual[:12]}, not the "
            f"{judged[:12]} the gate judged: it was changed after the gate ran. Restore it with "
            "`uv run dvc checkout models`, or rerun the pipeline with `uv run dvc repro`."
        )
    return role, judged


def logged_artifact(params: Params, role: str, sha256: str, store: Store) -> Artifact:
    """The MLflow run of the judged model, checked in the configured store."""
    from {{ cookiecutter.package_name }}.promotion.tracking import redact, store_identity

    tracking = read_record(params.paths.tracking_report, TrackingReport)
    run = tracking.runs.get(role)
    fix = (
        "Log the current models with `uv run dvc repro --force --single-item evaluate`, then "
        "promote again."
    )
    if run is None:
        raise PipelineError(f"{params.paths.tracking_report} names no {role} run. {fix}")
    if tracking.tracking_uri != store_identity(store.uri):
        raise PipelineError(
            f"the models were logged to {tracking.tracking_uri}, but the configured store "
            f"is {store_identity(store.uri)} (MLFLOW_TRACKING_URI). Use the store they were "
            "logged to, or log them to this one: "
            "`uv run dvc repro --force --single-item evaluate`."
        )
    with store.calls():
        from mlflow.exceptions import MlflowException

        try:
            logged = store.client.get_run(run.run_id)
        except MlflowException as error:
            if "not found" not in str(error).lower():
                raise
            raise PipelineError(f"run {run.run_id} is not in {redact(store.uri)}. {fix}") from None
    logged_sha = logged.data.tags.get(TAG_SHA)
    if logged_sha != sha256:
        raise PipelineError(
            f"MLflow run {run.run_id} holds a {role} with SHA-256 "
            f"{(logged_sha or 'unknown')[:12]}, not the {sha256[:12]} the gate judged (was "
            f"`evaluate --no-track` used?). {fix}"
        )
    return Artifact(
        role=role,
        kind=logged.data.tags.get("model.kind", "unknown"),
        sha256=sha256,
        run_id=run.run_id,
        model_uri=run.model_uri,
    )
