"""`export`: pin one model into BentoML's model store, for `bentoml serve` and `bentoml build`.

The model is resolved here, once, from the registry (`--alias champion`, `--version N`) or from
the model the gate approved (`--proposed`, checked against the gate report's SHA-256), never when
a pod starts. The bundle written (serving.py) holds everything the service needs, including the
data contract the model was trained under and the serving settings of params.yaml.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from {{ cookiecutter.package_name }}.core.artifacts import (
    file_sha256,
    load_manifest,
    load_model,
)
from {{ cookiecutter.package_name }}.core.config import Params
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.serving.scorer import (
    BENTOML_HOME_ENV,
    BUNDLE_FILE,
    CONTRACT_FILE,
    FALLBACK_FILE,
    MODEL_FILE,
    BundleInfo,
    Scorer,
    project_identity,
    use_project_store,
)

# The BentoML model (and service) name: the package name is a valid BentoML name.
MODEL_NAME = "{{ cookiecutter.package_name }}"
# The model answering when the served one fails: the baseline behind a candidate. A baseline
# champion has no fallback (the floor only predicts the prior, which is no answer to send).
FALLBACK_ROLE = {"candidate": "baseline"}


def _describe(params: Params, **fields: Any) -> dict[str, Any]:
    return {
        "exported_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "max_records": params.serve.max_records,
        "workers": params.serve.workers,
        "extra_columns": params.serve.extra_columns,
        "unseen_categories": params.validate_.unseen_categories,
        **fields,
    }


def stage_proposed(params: Params, directory: Path) -> dict[str, Any]:
    """The model the gate approves now (its report rebuilt, as `promote` does), from models/."""
    from {{ cookiecutter.package_name }}.promotion.preconditions import (
        judge_now,
        judged_artifact,
    )
    from {{ cookiecutter.package_name }}.promotion.registry import open_store

    report = judge_now(params, open_store(params, "export", must_exist=False), "export")
    role, sha256 = judged_artifact(params, report)
    return stage_models(params, directory, role, sha256)


def stage_models(params: Params, directory: Path, role: str, sha256: str) -> dict[str, Any]:
    """Package models/<role> (SHA-256 `sha256`) with its contract and fallback: no checks of
    the verdict here, `stage_proposed` makes them (tests of the service package directly)."""
    manifest = load_manifest(params.paths.models)
    contract = params.paths.schema_file
    if file_sha256(contract) != manifest.contract_sha256:
        raise PipelineError(
            f"{contract} is not the contract the models were trained with: run `uv run dvc "
            "repro` (or `uv run dvc checkout`) so that schema.yaml and models/ agree."
        )
    shutil.copyfile(contract, directory / CONTRACT_FILE)
    # The judged bytes themselves (load_model checked their hash), not a re-serialised copy.
    load_model(params.paths.models, manifest.model(role))
    shutil.copyfile(params.paths.models / manifest.model(role).file, directory / MODEL_FILE)
    fields: dict[str, Any] = {"model_file_sha256": sha256}
    fallback_role = FALLBACK_ROLE.get(role)
    if fallback_role:
        entry = manifest.model(fallback_role)
        load_model(params.paths.models, entry)
        shutil.copyfile(params.paths.models / entry.file, directory / FALLBACK_FILE)
        fields["fallback_file_sha256"] = entry.sha256
        fields["fallback_kind"] = entry.kind
    return _describe(
        params,
        model_version=f"gate-{sha256[:12]}",
        model_kind=manifest.model(role).kind,
        model_role=role,
        model_sha256=sha256,
        contract_sha256=manifest.contract_sha256,
        task=manifest.task,
        classes=manifest.classes,
        numeric=manifest.numeric,
        categorical=manifest.categorical,
        target_quantiles=manifest.target_quantiles,
        source=f"{params.paths.gate_report} (the {role} the gate approves)",
        **fields,
    )


def stage_registered(
    params: Params, directory: Path, alias: str | None, version: int | None
) -> dict[str, Any]:
    """A registered version (by alias or number): its judged bytes, hash checked, with the
    contract and manifest of its run. A version without a gate record is refused."""
    import mlflow.artifacts

    from {{ cookiecutter.package_name }}.core.artifacts import PROPOSABLE
    from {{ cookiecutter.package_name }}.promotion.registry import (
        alias_version,
        download_judged,
        load_registered,
        open_store,
    )

    store = open_store(params, "export", must_exist=True)
    assert store is not None
    if version is None:
        holder = alias_version(store, alias or "champion")
        if holder is None:
            raise PipelineError(
                f"no version of {store.name} has the alias {alias!r}: promote one first "
                f"(uv run {MODEL_NAME} promote --to champion), or export --proposed."
            )
        version = int(holder.version)
    registered = load_registered(store, version, directory / "download")
    tags, manifest = registered.tags, registered.manifest
    role = tags.get("model.role", "candidate")
    if role not in PROPOSABLE:
        raise PipelineError(f"version {version} is a {role} model, which is never served.")
    shutil.copyfile(registered.file, directory / MODEL_FILE)
    fields: dict[str, Any] = {"model_file_sha256": tags["artifact.sha256"]}
    fallback_role = FALLBACK_ROLE.get(role)
    if fallback_role and tags.get("fallback.sha256") and tags.get("fallback.run_id"):
        fallback = download_judged(
            store,
            tags["fallback.run_id"],
            tags.get("fallback.path", f"judged/{fallback_role}.joblib"),
            tags["fallback.sha256"],
            directory / "download" / "fallback",
            f"the fallback of version {version}",
        )
        shutil.copyfile(fallback, directory / FALLBACK_FILE)
        fields["fallback_file_sha256"] = tags["fallback.sha256"]
        fields["fallback_kind"] = manifest.model(fallback_role).kind
    with store.calls():
        contract = Path(
            mlflow.artifacts.download_artifacts(
                run_id=tags["pipeline.run_id"],
                artifact_path=CONTRACT_FILE,
                dst_path=str(directory / "download" / "contract"),
            )
        )
    shutil.copyfile(contract, directory / CONTRACT_FILE)
    shutil.rmtree(directory / "download")
    return _describe(
        params,
        model_version=str(version),
        model_kind=tags.get("model.kind", manifest.model(role).kind),
        model_role=role,
        model_sha256=tags["artifact.sha256"],
        contract_sha256=manifest.contract_sha256,
        task=manifest.task,
        classes=manifest.classes,
        numeric=manifest.numeric,
        categorical=manifest.categorical,
        target_quantiles=manifest.target_quantiles,
        source=f"{store.name} version {version}" + (f" ({alias})" if alias else ""),
        **fields,
    )


def run_export(
    params: Params,
    alias: str | None = None,
    version: int | None = None,
    proposed: bool = False,
    staged: Callable[[Path], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write the bundle, load it once as the service would (a bundle that cannot serve is never
    saved), then save it to BentoML's model store (the checkout's .bentoml/ unless
    $BENTOML_HOME is set); returns the model tag. `staged` packages the bundle itself (the
    service's tests); the CLI always checks the verdict first."""
    with tempfile.TemporaryDirectory(prefix="export-") as scratch:
        directory = Path(scratch)
        if staged is not None:
            description = staged(directory)
        elif proposed:
            description = stage_proposed(params, directory)
        else:
            description = stage_registered(params, directory, alias, version)
        # Which checkout exported it: the service and `predict` serve no other project's model.
        info = BundleInfo.model_validate({**description, "project": project_identity(Path.cwd())})
        (directory / BUNDLE_FILE).write_text(info.model_dump_json(indent=2) + "\n", "utf-8")
        scorer = Scorer(directory)
        scorer.score(scorer.example())  # the warm-up the service runs before it is ready

        use_project_store()  # this checkout's .bentoml/, unless $BENTOML_HOME names another
        import bentoml

        metadata = {key: value for key, value in info.public().items() if value is not None}
        labels = {
            "model_version": info.model_version,
            "model_kind": info.model_kind,
            "model_role": info.model_role,
        }
        with bentoml.models.create(MODEL_NAME, labels=labels, metadata=metadata) as stored:
            for item in directory.iterdir():
                if item.is_file():
                    shutil.copyfile(item, Path(stored.path) / item.name)
        return {
            "tag": str(stored.tag),
            "store": os.environ.get(BENTOML_HOME_ENV, "~/bentoml"),
            "model_version": info.model_version,
            "model_kind": info.model_kind,
            "fallback": info.fallback_kind,
            "source": info.source,
        }
