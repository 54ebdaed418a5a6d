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
from pathlib import Path
from typing import Any

from {{ cookiecutter.package_name }}.artifacts import (
    file_sha256,
    load_manifest,
    load_model,
)
from {{ cookiecutter.package_name }}.config import Params
from {{ cookiecutter.package_name }}.errors import PipelineError
from {{ cookiecutter.package_name }}.files import read_json
from {{ cookiecutter.package_name }}.serving import (
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


def _dump(model: Any, path: Path) -> str:
    import joblib

    joblib.dump(model, path)
    return file_sha256(path)


def _describe(params: Params, **fields: Any) -> dict[str, Any]:
    return {
        "exported_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "max_records": params.serve.max_records,
        "workers": params.serve.workers,
        "unseen_categories": params.validate_.unseen_categories,
        **fields,
    }


def stage_proposed(params: Params, directory: Path) -> dict[str, Any]:
    """The model reports/gate.json approved, from models/ (as `dvc pull models` restores it)."""
    from {{ cookiecutter.package_name }}.binding import judged_artifact

    role, sha256 = judged_artifact(params, read_json(params.paths.gate_report))
    manifest = load_manifest(params.paths.models)
    contract = params.paths.schema_file
    if file_sha256(contract) != manifest.contract_sha256:
        raise PipelineError(
            f"{contract} is not the contract the models were trained with: run `uv run dvc "
            "repro` (or `uv run dvc checkout`) so that schema.yaml and models/ agree."
        )
    shutil.copyfile(contract, directory / CONTRACT_FILE)
    fields: dict[str, Any] = {
        "model_file_sha256": _dump(
            load_model(params.paths.models, manifest.models[role]), directory / MODEL_FILE
        )
    }
    fallback_role = FALLBACK_ROLE.get(role)
    if fallback_role:
        fallback = load_model(params.paths.models, manifest.models[fallback_role])
        fields["fallback_file_sha256"] = _dump(fallback, directory / FALLBACK_FILE)
        fields["fallback_kind"] = manifest.models[fallback_role].kind
    return _describe(
        params,
        model_version=f"gate-{sha256[:12]}",
        model_kind=manifest.models[role].kind,
        model_role=role,
        model_sha256=sha256,
        contract_sha256=manifest.contract_sha256,
        task=manifest.task,
        classes=manifest.classes,
        numeric=manifest.numeric,
        categorical=manifest.categorical,
        source=f"{params.paths.gate_report} (the {role} the gate approved)",
        **fields,
    )


def stage_registered(
    params: Params, directory: Path, alias: str | None, version: int | None
) -> dict[str, Any]:
    """A registered version (by alias or number) with the contract and manifest of its run."""
    import mlflow.artifacts
    import mlflow.sklearn

    from {{ cookiecutter.package_name }}.registry import (
        alias_version,
        get_version,
        open_store,
    )

    store = open_store(params, "export", must_exist=True)
    assert store is not None
    with store.calls():
        if version is None:
            holder = alias_version(store, alias or "champion")
            if holder is None:
                raise PipelineError(
                    f"no version of {store.name} has the alias {alias!r}: promote one first "
                    f"(uv run {MODEL_NAME} promote --to champion), or export --proposed."
                )
            version = int(holder.version)
        registered = get_version(store, version)
        tags = registered.tags
        run_id = tags.get("pipeline.run_id")
        if not run_id:
            raise PipelineError(f"version {version} records no pipeline run (pipeline.run_id).")
        manifest = mlflow.artifacts.load_dict(f"runs:/{run_id}/manifest.json")
        contract = Path(
            mlflow.artifacts.download_artifacts(
                f"runs:/{run_id}/{CONTRACT_FILE}", dst_path=str(directory)
            )
        )
        model = mlflow.sklearn.load_model(f"models:/{store.name}/{version}")
        role = tags.get("model.role", "candidate")
        fields: dict[str, Any] = {"model_file_sha256": _dump(model, directory / MODEL_FILE)}
        fallback_role = FALLBACK_ROLE.get(role)
        if fallback_role and tags.get("fallback.model_uri"):
            fallback = mlflow.sklearn.load_model(tags["fallback.model_uri"])
            fields["fallback_file_sha256"] = _dump(fallback, directory / FALLBACK_FILE)
            fields["fallback_kind"] = manifest["models"][fallback_role]["kind"]
    if contract.name != CONTRACT_FILE:
        contract.rename(directory / CONTRACT_FILE)
    return _describe(
        params,
        model_version=str(version),
        model_kind=tags.get("model.kind", manifest["models"][role]["kind"]),
        model_role=role,
        model_sha256=tags.get("artifact.sha256", ""),
        contract_sha256=manifest["contract_sha256"],
        task=manifest["task"],
        classes=manifest["classes"],
        numeric=manifest["numeric"],
        categorical=manifest["categorical"],
        source=f"{store.name} version {version}" + (f" ({alias})" if alias else ""),
        **fields,
    )


def run_export(
    params: Params, alias: str | None = None, version: int | None = None, proposed: bool = False
) -> dict[str, Any]:
    """Write the bundle, load it once as the service would (a bundle that cannot serve is never
    saved), then save it to BentoML's model store (the checkout's .bentoml/ unless
    $BENTOML_HOME is set); returns the model tag."""
    with tempfile.TemporaryDirectory(prefix="export-") as scratch:
        directory = Path(scratch)
        if proposed:
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
