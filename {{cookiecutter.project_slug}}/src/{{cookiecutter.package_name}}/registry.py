"""The MLflow model registry: register the candidate, move the aliases, roll back.

Aliases: `challenger` is the newest version that passed the gate (what a canary serves);
`champion` is what production serves. The registered model keeps a tag `champion_history`, the
versions that have held `champion`, oldest first: promoting to champion appends, rolling back
removes the last entry and gives `champion` to the one before. Rolling back twice in a row
therefore walks two steps back; `rollback --to N` gives `champion` to version N and appends it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from {{ cookiecutter.package_name }}.config import Params
from {{ cookiecutter.package_name }}.errors import PipelineError
from {{ cookiecutter.package_name }}.files import read_json

CHALLENGER, CHAMPION = "challenger", "champion"
HISTORY_TAG = "champion_history"


def model_name(params: Params) -> str:
    return params.mlflow.registered_model or params.mlflow.experiment


def registry_exists(params: Params) -> bool:
    """False for a local SQLite store that was never created, checked without importing MLflow."""
    uri = params.mlflow.resolved_tracking_uri()
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).is_file()
    return True


def client(params: Params) -> Any:
    """An MlflowClient on the configured store, or a PipelineError saying why not."""
    from {{ cookiecutter.package_name }}.tracking import connect

    connect(params)
    from mlflow import MlflowClient

    return MlflowClient()


def _not_found(error: Exception) -> bool:
    return "RESOURCE_DOES_NOT_EXIST" in str(getattr(error, "error_code", "")) or (
        "not found" in str(error).lower()
    )


def alias_version(mlflow_client: Any, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if _not_found(error):
            return None
        raise


def champion_history(mlflow_client: Any, name: str) -> list[int]:
    registered = mlflow_client.get_registered_model(name)
    return [int(v) for v in json.loads(registered.tags.get(HISTORY_TAG, "[]"))]


def _set_history(mlflow_client: Any, name: str, history: list[int]) -> None:
    mlflow_client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))


def _git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return result.stdout.strip()


def params_md5(params: Params) -> str:
    """Hash of the validated settings, whichever file they were read from."""
    canonical = params.model_dump_json(by_alias=True).encode()
    return hashlib.md5(canonical, usedforsecurity=False).hexdigest()


def gate_summary(gate_report: dict[str, Any]) -> str:
    """The decision and each check's status: small enough for a tag, always valid JSON.

    The full report (values, thresholds) is an artifact of the candidate's run: gate/gate.json.
    """
    summary = {
        "decision": gate_report["decision"],
        "checks": {check["name"]: check["status"] for check in gate_report["checks"]},
    }
    return json.dumps(summary, separators=(",", ":"))


def version_tags(
    params: Params, tracking: dict[str, Any], gate_report: dict[str, Any]
) -> dict[str, str]:
    """Tags of a registered version; `tracking` is the evaluate stage's tracking report."""
    return {
        "git.commit": _git_commit(),
        "params.md5": params_md5(params),
        "data.train_md5": tracking["data"]["data.train_md5"],
        "data.test_md5": tracking["data"]["data.test_md5"],
        "gate.decision": gate_report["decision"],
        "gate.failed_checks": ",".join(gate_report["failed_checks"]) or "none",
        "gate.report": gate_summary(gate_report),
    }


def register_candidate(params: Params, gate_report: dict[str, Any]) -> dict[str, Any]:
    """Register the evaluated candidate (once per run) and point `challenger` at it."""
    tracking = read_json(params.paths.tracking_report)
    candidate = tracking["runs"]["candidate"]
    name = model_name(params)
    mlflow_client = client(params)
    existing = [
        version
        for version in mlflow_client.search_model_versions(f"name='{name}'")
        if version.run_id == candidate["run_id"]
    ]
    if existing:
        version = existing[0]
    else:
        if not _exists(mlflow_client, name):
            mlflow_client.create_registered_model(name, description="Promoted by the gate.")
        version = mlflow_client.create_model_version(
            name,
            source=candidate["model_uri"],
            run_id=candidate["run_id"],
            tags=version_tags(params, tracking, gate_report),
        )
        mlflow_client.log_dict(candidate["run_id"], gate_report, "gate/gate.json")
    previous = alias_version(mlflow_client, name, CHALLENGER)
    mlflow_client.set_registered_model_alias(name, CHALLENGER, version.version)
    return {
        "model": name,
        "alias": CHALLENGER,
        "version": int(version.version),
        "previous": int(previous.version) if previous else None,
    }


def promote_to_champion(params: Params, version: int | None) -> dict[str, Any]:
    """Give `champion` to a version that passed the gate (default: the challenger)."""
    name = model_name(params)
    mlflow_client = client(params)
    if version is None:
        challenger = alias_version(mlflow_client, name, CHALLENGER)
        if challenger is None:
            raise PipelineError(
                f"model {name!r} has no {CHALLENGER!r}: run `promote` first (it registers the "
                "candidate that passed the gate)."
            )
        version = int(challenger.version)
    target = _version(mlflow_client, name, version)
    decision = target.tags.get("gate.decision")
    if decision != "promote":
        raise PipelineError(
            f"version {version} of {name!r} did not pass the gate (gate.decision={decision}, "
            f"failed: {target.tags.get('gate.failed_checks', 'unknown')}); refusing to promote."
        )
    return _move_champion(mlflow_client, name, version, append=True)


def rollback(params: Params, to_version: int | None) -> dict[str, Any]:
    """Give `champion` back to the previous holder, or to `to_version`."""
    name = model_name(params)
    mlflow_client = client(params)
    if to_version is not None:
        _version(mlflow_client, name, to_version)
        return _move_champion(mlflow_client, name, to_version, append=True)
    history = champion_history(mlflow_client, name) if _exists(mlflow_client, name) else []
    if len(history) < 2:
        raise PipelineError(
            f"model {name!r} has no earlier champion to roll back to (history: {history}); "
            "use `rollback --to VERSION` to name one."
        )
    history.pop()
    _set_history(mlflow_client, name, history)
    return _move_champion(mlflow_client, name, history[-1], append=False)


def _exists(mlflow_client: Any, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(name)
    except MlflowException as error:
        if _not_found(error):
            return False
        raise
    return True


def _version(mlflow_client: Any, name: str, version: int) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version(name, str(version))
    except MlflowException as error:
        if _not_found(error):
            raise PipelineError(f"model {name!r} has no version {version}.") from None
        raise


def _move_champion(mlflow_client: Any, name: str, version: int, *, append: bool) -> dict[str, Any]:
    previous = alias_version(mlflow_client, name, CHAMPION)
    mlflow_client.set_registered_model_alias(name, CHAMPION, str(version))
    history = champion_history(mlflow_client, name)
    if append and (not history or history[-1] != version):
        history.append(version)
        _set_history(mlflow_client, name, history)
    return {
        "model": name,
        "alias": CHAMPION,
        "previous": int(previous.version) if previous else None,
        "version": version,
        "history": history,
    }


def list_versions(params: Params) -> list[dict[str, Any]]:
    name = model_name(params)
    if not registry_exists(params):
        return []
    mlflow_client = client(params)
    if not _exists(mlflow_client, name):
        return []
    rows = []
    for found in mlflow_client.search_model_versions(f"name='{name}'"):
        # search results leave `aliases` empty on some stores; a direct lookup fills it.
        version = mlflow_client.get_model_version(name, found.version)
        rows.append(
            {
                "version": int(version.version),
                "aliases": sorted(version.aliases),
                "gate": version.tags.get("gate.decision", "unknown"),
                "failed_checks": version.tags.get("gate.failed_checks", ""),
                "git_commit": version.tags.get("git.commit", "")[:12],
                "run_id": version.run_id,
            }
        )
    return sorted(rows, key=lambda row: row["version"])


def champion_model(params: Params) -> tuple[Any, int] | None:
    """The champion as an MLflow pyfunc model and its version, or None when there is none."""
    if not registry_exists(params):
        return None
    name = model_name(params)
    mlflow_client = client(params)
    if not _exists(mlflow_client, name):
        return None
    champion = alias_version(mlflow_client, name, CHAMPION)
    if champion is None:
        return None
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}"), int(champion.version)
