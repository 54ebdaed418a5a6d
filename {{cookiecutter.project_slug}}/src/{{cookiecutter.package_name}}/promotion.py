"""The promotion commands: register the judged artifact, make it champion, roll back, list.

Each command checks everything it relies on at the moment it acts (the registry can change
between a pipeline run and a promotion; DVC cannot see it) and refuses with a message naming
the problem and the command that fixes it. Nothing is registered or moved on a refusal.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from {{ cookiecutter.package_name }}.config import Params
from {{ cookiecutter.package_name }}.errors import PipelineError
from {{ cookiecutter.package_name }}.files import read_json
from {{ cookiecutter.package_name }}.registry import (
    CHALLENGER,
    CHAMPION,
    TAG_DECISION,
    Store,
    alias_version,
    champion_history,
    get_version,
    git_state,
    list_versions,
    load_version_model,
    move_champion,
    open_store,
    override_tags,
    params_md5,
    register,
    rollback,
)

PKG = "{{ cookiecutter.package_name }}"


def _store(params: Params, retry: str) -> Store:
    store = open_store(params, retry, must_exist=True)
    assert store is not None  # must_exist raises instead
    return store


def promote_challenger(params: Params) -> dict[str, Any]:
    """`promote`: register exactly the artifact the gate approved, re-checked against the
    champion as it is now, and point `challenger` at it."""
    from {{ cookiecutter.package_name }}.binding import (
        judged_artifact,
        logged_artifact,
        require_current_pipeline,
    )

    require_current_pipeline("promote")
    report = read_json(params.paths.gate_report)
    role, sha256 = judged_artifact(params, report)
    store = _store(params, "promote")
    artifact = logged_artifact(params, role, sha256, store)
    champion = live_champion_check(params, store, role)
    if champion["status"] == "fail":
        raise PipelineError(
            f"not_worse_than_champion fails now: {champion['detail']}. Nothing was registered."
        )
    checks = [
        champion if check["name"] == "not_worse_than_champion" else check
        for check in report["checks"]
    ]
    report = {**report, "checks": checks}
    tracking = read_json(params.paths.tracking_report)
    tags = {
        "artifact.sha256": artifact.sha256,
        "model.kind": artifact.kind,
        "model.role": artifact.role,
        **git_state(),
        "params.md5": params_md5(params),
        "data.train_md5": tracking["data"]["data.train_md5"],
        "data.test_md5": tracking["data"]["data.test_md5"],
        "pipeline.run_id": tracking["parent_run_id"],
        # What a served candidate falls back to when it fails (export.py): its baseline.
        **(
            {"fallback.model_uri": tracking["runs"]["baseline"]["model_uri"]}
            if artifact.role == "candidate" and "baseline" in tracking.get("runs", {})
            else {}
        ),
        **split_tags(params),
        TAG_DECISION: report["decision"],
        "gate.failed_checks": ",".join(report["failed_checks"]) or "none",
        "gate.report": _summary(report),
    }
    return register(params, store, artifact, report, tags)


def split_tags(params: Params) -> dict[str, str]:
    """How the registered model's data was split (the full definition is in its run)."""
    split = read_json(params.paths.split_report)
    return {
        "split.method": str(split.get("method")),
        "split.fingerprint": str(split.get("fingerprint")),
    }


def _summary(report: dict[str, Any]) -> str:
    from {{ cookiecutter.package_name }}.registry import gate_summary

    return gate_summary(report)


def live_champion_check(params: Params, store: Store, role: str) -> dict[str, Any]:
    """not_worse_than_champion for the model in models/<role>, against the champion now."""
    from {{ cookiecutter.package_name }}.artifacts import load_manifest, load_model
    from {{ cookiecutter.package_name }}.evaluate import holdout, predict_scores
    from {{ cookiecutter.package_name }}.gate import champion_comparison, check_champion

    manifest = load_manifest(params.paths.models)
    features, truth = holdout(params, manifest)
    model = load_model(params.paths.models, manifest.models[role])
    scores = predict_scores(model, features, params.task)
    comparison = champion_comparison(params, features, truth, scores, store)
    check = check_champion(comparison, params.gate.max_regression, params.evaluate.confidence)
    return asdict(check)


def promote_champion(params: Params, version: int | None, override: str | None) -> dict[str, Any]:
    """`promote --to champion`: give champion to a version that passed the gate and is not
    worse than the champion on the current holdout, checked now."""
    from {{ cookiecutter.package_name }}.artifacts import load_manifest
    from {{ cookiecutter.package_name }}.evaluate import holdout
    from {{ cookiecutter.package_name }}.gate import (
        check_champion,
        compare_on_holdout,
        rows_unseen,
    )
    from {{ cookiecutter.package_name }}.registry import split_of

    store = _store(params, "promote")
    if version is None:
        challenger = alias_version(store, CHALLENGER)
        if challenger is None:
            raise PipelineError(
                f"model {store.name!r} has no {CHALLENGER!r}: run `uv run {PKG} promote` first "
                "(it registers the model the gate approved)."
            )
        version = int(challenger.version)
    target = get_version(store, version)
    holder = alias_version(store, CHAMPION)
    current = int(holder.version) if holder else None
    if current == version:
        raise PipelineError(f"version {version} is already the champion; nothing changed.")
    refusals = []
    skipped = None
    if target.tags.get(TAG_DECISION) != "promote":
        refusals.append(
            f"version {version} did not pass the gate ({TAG_DECISION}="
            f"{target.tags.get(TAG_DECISION)}, failed: {target.tags.get('gate.failed_checks')})"
        )
    if current is not None:
        manifest = load_manifest(params.paths.models)
        features, truth = holdout(params, manifest)
        rows, note = rows_unseen(
            params, [split_of(store, version), split_of(store, current)], len(truth)
        )
        candidate = load_version_model(store, version)
        try:
            raw = candidate.predict(features)
        except Exception as error:
            refusals.append(f"version {version} cannot score the current holdout: {error}")
        else:
            import numpy as np

            output = np.asarray(raw, dtype=np.float64)
            scores = output[:, 1] if params.task == "binary_classification" else output
            if rows is None:
                skipped = f"the comparison with champion v{current} was skipped: {note}"
            else:
                champion = load_version_model(store, current)
                comparison = compare_on_holdout(
                    params, champion, current, features[rows], truth[rows], scores[rows]
                )
                check = check_champion(
                    {**comparison, "note": note},
                    params.gate.max_regression,
                    params.evaluate.confidence,
                )
                if check.status == "fail":
                    refusals.append(check.detail)
    tags = {}
    if refusals:
        if override is None:
            raise PipelineError(
                "refusing to make version "
                f"{version} champion: {'; '.join(refusals)}. Nothing changed. To do it anyway, "
                "add --override --reason 'why' (recorded on the version)."
            )
        tags = override_tags("promote", override)
    result = move_champion(store, version, expected=current, previous_pointer=True, tags=tags)
    return {**result, "override": bool(tags), "note": skipped}


def roll_back(params: Params, to_version: int | None, override: str | None) -> dict[str, Any]:
    store = _store(params, "rollback")
    result = rollback(store, to_version, override)
    return {**result, "history": champion_history(store)}


def models(params: Params) -> list[dict[str, Any]]:
    return list_versions(_store(params, "models"))
