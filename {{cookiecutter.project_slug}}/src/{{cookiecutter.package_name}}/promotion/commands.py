"""The promotion commands: register the judged artifact, make it champion, roll back, list.

Each command checks everything it relies on at the moment it acts (the registry can change
between a pipeline run and a promotion; DVC cannot see it) and refuses with a message naming
the problem and the command that fixes it. Nothing is registered or moved on a refusal.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from {{ cookiecutter.package_name }}.core.artifacts import CHAMPION_CHECK
from {{ cookiecutter.package_name }}.core.config import Params
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.records import (
    GateReport,
    SplitDefinition,
    TrackingReport,
    read_record,
)
from {{ cookiecutter.package_name }}.promotion.registry import (
    CHALLENGER,
    CHAMPION,
    TAG_DECISION,
    Store,
    alias_version,
    champion_history,
    get_version,
    git_state,
    list_versions,
    load_registered,
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


def _rules_tag(params: Params) -> str:
    from {{ cookiecutter.package_name }}.promotion.gate import rules

    return json.dumps(rules(params), separators=(",", ":"), sort_keys=True)


def promote_challenger(params: Params, override: str | None = None) -> dict[str, Any]:
    """`promote`: register exactly the artifact the gate approves now (its report rebuilt from
    the model files, the holdout and the champion as it is now) and point `challenger` at it.

    With `override`, a run rejected *only* because of the champion comparison (worse, or not
    comparable: another split, other features) is registered too, with the reason recorded.
    """
    from {{ cookiecutter.package_name }}.promotion.preconditions import (
        judge_now,
        judged_artifact,
        logged_artifact,
    )

    store = _store(params, "promote")
    report = judge_now(params, store, "promote")
    overridden = False
    if report.decision != "promote":
        only_champion = report.proposed is not None and report.failed_checks == [CHAMPION_CHECK]
        if override is None or not only_champion:
            failed = ", ".join(report.failed_checks) or "unknown"
            champion = report.check(CHAMPION_CHECK)
            detail = champion.detail if champion else ""
            hint = (
                f" {detail}"
                if only_champion
                else f" See {params.paths.gate_markdown}; an override can only set aside the "
                "champion comparison, never a model that fails its own checks."
            )
            raise PipelineError(
                f"the gate rejects this run now (failed {failed}); nothing was registered.{hint}"
            )
        overridden = True
        report = report.model_copy(update={"decision": "promote"})  # for the binding checks
    role, sha256 = judged_artifact(params, report)
    if overridden:
        report = report.model_copy(update={"decision": "reject"})
    artifact = logged_artifact(params, role, sha256, store)
    tracking = read_record(params.paths.tracking_report, TrackingReport)
    fallback = tracking.runs.get("baseline") if artifact.role == "candidate" else None
    tags = {
        "artifact.sha256": artifact.sha256,
        "artifact.path": tracking.runs[role].artifact_path,
        "model.kind": artifact.kind,
        "model.role": artifact.role,
        **git_state(),
        "params.md5": params_md5(params),
        "gate.rules": _rules_tag(params),
        "data.train_md5": tracking.data["data.train_md5"],
        "data.test_md5": tracking.data["data.test_md5"],
        "pipeline.run_id": tracking.parent_run_id,
        # What a served candidate falls back to when it fails (export.py): its baseline.
        **(
            {
                "fallback.model_uri": fallback.model_uri,
                "fallback.run_id": fallback.run_id,
                "fallback.sha256": fallback.artifact_sha256,
                "fallback.path": fallback.artifact_path,
            }
            if fallback
            else {}
        ),
        **split_tags(params),
        TAG_DECISION: report.decision,
        "gate.failed_checks": ",".join(report.failed_checks) or "none",
        "gate.report": _summary(report),
        **(override_tags("promote", override) if overridden and override else {}),
    }
    return {**register(params, store, artifact, report, tags), "override": overridden}


def split_tags(params: Params) -> dict[str, str]:
    """How the registered model's data was split (the full definition is in its run)."""
    split = read_record(params.paths.split_report, SplitDefinition)
    return {"split.method": split.method, "split.fingerprint": split.fingerprint}


def _summary(report: GateReport) -> str:
    from {{ cookiecutter.package_name }}.promotion.registry import gate_summary

    return gate_summary(report)


def promote_champion(params: Params, version: int | None, override: str | None) -> dict[str, Any]:
    """`promote --to champion`: give champion to a version that passed the gate and is not
    worse than the champion on the current holdout, checked now with the rules the pipeline
    ran with.

    Without `version` it promotes the challenger; with `override` and no `version`, the model
    of this pipeline run (registered first, with the override recorded): the one command that
    moves past a champion that cannot be compared.
    """
    from {{ cookiecutter.package_name }}.promotion.preconditions import (
        require_bound_rules,
        require_current_pipeline,
    )

    require_current_pipeline("promote --to champion")
    require_bound_rules(params, "promote --to champion")
    store = _store(params, "promote")
    registered_now, named = None, version
    if version is None and override is not None:
        registered_now = promote_challenger(params, override)
        version = registered_now["version"]
    if version is None:
        challenger = alias_version(store, CHALLENGER)
        if challenger is None:
            raise PipelineError(
                f"model {store.name!r} has no {CHALLENGER!r}: run `uv run {PKG} promote` first "
                "(it registers the model the gate approved)."
            )
        version = int(challenger.version)
    holder = alias_version(store, CHAMPION)
    current = int(holder.version) if holder else None
    if current == version and registered_now is None and named is None:
        raise PipelineError(
            f"the challenger, version {version}, is already the champion: nothing newer was "
            f"registered (`uv run {PKG} promote` registers this run's model only when the gate "
            f"approves it; see {params.paths.gate_markdown}). Nothing changed."
        )
    if current == version:
        raise PipelineError(f"version {version} is already the champion; nothing changed.")
    refusals, note = champion_refusals(params, store, version, current)
    tags = {"champion.rules": _rules_tag(params)}
    if refusals:
        if override is None:
            raise PipelineError(
                "refusing to make version "
                f"{version} champion: {'; '.join(refusals)}. Nothing changed. To do it anyway, "
                f"record why: `uv run {PKG} promote --to champion --version {version} --override "
                "--reason '...'` (recorded on the version)."
            )
        tags.update(override_tags("promote", override, get_version(store, version).tags))
    result = move_champion(store, version, expected=current, previous_pointer=True, tags=tags)
    return {**result, "override": bool(refusals), "note": note}


def champion_refusals(
    params: Params, store: Store, version: int, current: int | None
) -> tuple[list[str], str | None]:
    """Why `version` may not replace champion `current` now ([] when it may), and a note."""
    from {{ cookiecutter.package_name }}.core.artifacts import load_manifest
    from {{ cookiecutter.package_name }}.core.records import read_frame
    from {{ cookiecutter.package_name }}.pipeline.evaluate import holdout
    from {{ cookiecutter.package_name }}.promotion.gate import (
        FAIL,
        ChampionSettings,
        check_champion,
        check_settings,
        compare_with_champion,
        this_runs_scores,
        version_scores,
    )

    refusals: list[str] = []
    with tempfile.TemporaryDirectory(prefix="promote-") as scratch:
        try:
            target = load_registered(store, version, Path(scratch))
        except PipelineError as error:
            return [str(error)], None
        if target.tags.get(TAG_DECISION) != "promote":
            refusals.append(
                f"version {version} did not pass the gate ({TAG_DECISION}="
                f"{target.tags.get(TAG_DECISION)}, failed: {target.tags.get('gate.failed_checks')})"
            )
        if current is None:
            return refusals, None
        manifest = load_manifest(params.paths.models)
        _, truth = holdout(params, manifest)
        test = read_frame(params.paths.test)
        # This run's model (the usual case) has the holdout scores evaluate wrote.
        scores = this_runs_scores(params, manifest, target.tags.get("artifact.sha256"), truth)
        problem = None
        if scores is None:
            scores, problem = version_scores(params, target, test, manifest.classes)
        if problem is not None:
            return [
                *refusals,
                f"version {version} cannot score the current holdout: {problem}",
            ], None
        assert scores is not None  # version_scores gives scores or a problem
        comparison = compare_with_champion(
            params,
            store,
            current,
            scores,
            [target.manifest.split],
            test,
            truth,
            manifest.classes,
            Path(scratch),
        )
        allowed = check_settings(params)[CHAMPION_CHECK]
        assert isinstance(allowed, ChampionSettings)  # the catalogue's entry for CHAMPION_CHECK
        check = check_champion(comparison, allowed.max_regression, params.evaluate.confidence)
        if check.status == FAIL:
            refusals.append(check.detail)
        return refusals, comparison.get("note")


def roll_back(params: Params, to_version: int | None, override: str | None) -> dict[str, Any]:
    store = _store(params, "rollback")
    result = rollback(store, to_version, override)
    return {**result, "history": champion_history(store)}


def models(params: Params) -> list[dict[str, Any]]:
    return list_versions(_store(params, "models"))
