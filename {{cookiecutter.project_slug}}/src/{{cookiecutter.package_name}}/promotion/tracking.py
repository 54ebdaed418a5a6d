"""Log each pipeline run to MLflow: params, metrics with intervals, models, data version.

One parent run per pipeline execution, with a nested run for the baseline and the candidate,
each holding its model (signature and input example included) so the registry can pick it up,
and tagged with the SHA-256 of the exact file it was logged from (`artifact.sha256`): promote
registers a run's model only when that hash is the one the gate judged. MLflow is imported only
here, at the end of the evaluate stage, because importing it costs seconds;
`{{ cookiecutter.package_name }} track` reruns just this part.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

from {{ cookiecutter.package_name }}.core.artifacts import PROPOSABLE, ROLES, load_models
from {{ cookiecutter.package_name }}.core.config import Params
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.features import prepare_frame
from {{ cookiecutter.package_name }}.core.records import (
    Intervals,
    MetricInterval,
    Scores,
    TrackingReport,
    read_frame,
    read_record,
    write_record,
)

SPLIT_ARTIFACT = "split.json"
JUDGED_ARTIFACT_DIR = "judged"
# The roles the gate can propose, so the ones the registry may need (in ROLES order).
LOGGED_MODELS = tuple(role for role in ROLES if role in PROPOSABLE)
RUNTIME_PACKAGES = ("scikit-learn", "lightgbm", "numpy", "pandas", "scipy")
EXAMPLE_ROWS = 5


def redact(uri: str) -> str:
    """A tracking URI without credentials, safe to print and to write to reports."""
    return re.sub(r"//[^/@]+@", "//***@", uri)


def store_identity(uri: str) -> str:
    """The store a URI names, comparable across spellings: a SQLite file inside the project is
    named relative to it (so a moved or copied project still names its own store), every other
    URI is itself, without credentials."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///")).resolve()
        with contextlib.suppress(ValueError):
            path = path.relative_to(Path.cwd().resolve())
        return f"sqlite:///{path}"
    return redact(uri)


def file_md5(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def flatten(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(flatten(name, value))
        else:
            flat[name] = value
    return flat


def model_metrics(
    scores: dict[str, float], intervals: dict[str, MetricInterval]
) -> dict[str, float]:
    """One model's metrics as MLflow logs them, each with its interval's bounds."""
    logged = {f"test_{metric}": value for metric, value in scores.items()}
    for metric, interval in intervals.items():
        logged[f"test_{metric}_ci_lower"] = interval.lower
        logged[f"test_{metric}_ci_upper"] = interval.upper
    return logged


def configure(params: Params) -> Any:
    """Import MLflow and point it at the configured store (no request is made yet)."""
    # Fail within a bounded time when a tracking server does not answer (params.yaml, mlflow:);
    # an explicit MLFLOW_HTTP_REQUEST_* variable in the environment wins.
    settings = params.mlflow
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.request_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(settings.request_timeout_seconds))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    # MLflow 3 reports usage to its maintainers unless told not to; opt in by setting it false.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # A progress bar per downloaded artifact (the split of a version) is noise in a CLI's output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    # uv environments have no pip, so MLflow warns it cannot resolve pip's version on every
    # logged model; the requirements are pinned explicitly, so the warning says nothing useful.
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    # Creating the local store's tables and detecting the uv project are routine, not news.
    for routine in ("mlflow.store.db.utils", "mlflow.utils.uv_utils", "alembic"):
        logging.getLogger(routine).setLevel(logging.WARNING)
    mlflow.set_tracking_uri(params.mlflow.resolved_tracking_uri())
    return mlflow


def connect(params: Params) -> Any:
    """MLflow, configured, with the experiment set: ready to log runs."""
    mlflow = configure(params)
    try:
        mlflow.set_experiment(params.mlflow.experiment)
    except Exception as error:  # MLflow raises many types for a store it cannot reach
        raise store_error(mlflow.get_tracking_uri(), error, "track") from None
    return mlflow


PKG = "{{ cookiecutter.package_name }}"
# What failed, what was kept, and the command that repeats it once the store answers.
RETRY = {
    "track": (
        "The metrics and models on disk are written; once the store answers, rerun the "
        "evaluate stage, which logs them:",
        "uv run dvc repro",
    ),
    "promote": ("Nothing was registered or moved; once the store answers:", None),
    "rollback": ("No alias was moved; once the store answers:", None),
    "models": ("Once the store answers:", None),
    "gate": ("Nothing was written; once the store answers:", None),
    "export": ("Nothing was exported; once the store answers:", None),
}


def invoked_command(retry: str) -> str:
    """The command line the user ran, arguments included (`promote --to champion --version 3`,
    not `promote`), when this process is the project's CLI; else `uv run <pkg> <retry>`."""
    import shlex
    import sys

    if Path(sys.argv[0]).name in (PKG, "__main__.py") and len(sys.argv) > 1:
        return f"uv run {PKG} " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])
    return f"uv run {PKG} {retry}"


def store_error(uri: str, error: Exception, retry: str) -> PipelineError:
    """One message for every way a store can fail, ending with the command to run again."""
    first_line = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
    advice, command = RETRY.get(retry, ("Once the store answers:", None))
    check = "Check MLFLOW_TRACKING_URI and that the server is up."
    if "database is locked" in str(error):
        check = (
            "Another process holds the local store's database (a running `mlflow ui`, "
            "`dvc repro` or registry command): wait for it to finish, or stop it."
        )
    return PipelineError(
        f"cannot use the MLflow tracking store at {redact(uri)}: "
        f"{type(error).__name__}: {first_line}\n"
        f"{check} {advice}\n"
        f"  {command or invoked_command(retry)}"
    )


# Exceptions of these modules (and OSError) mean the store failed, not the code.
STORE_ERROR_MODULES = ("mlflow", "requests", "urllib3", "sqlalchemy", "sqlite3")


@contextmanager
def store_errors(uri: str, retry: str) -> Iterator[None]:
    """Turn the store's own exceptions into one user-facing message naming `retry`."""
    try:
        yield
    except PipelineError:
        raise
    except Exception as error:
        if isinstance(error, OSError) or type(error).__module__.startswith(STORE_ERROR_MODULES):
            raise store_error(uri, error, retry) from None
        raise


def input_schema(example: Any) -> Any:
    """The model's input columns, typed by role rather than by the example's values.

    `example` comes from `prepare_frame`: numeric features are float64, categorical ones text.
    Inferred from five rows, a categorical column that happens to be missing in all of them
    would be typed double, and MLflow would then cast the text it is given to numbers (or NaN
    to float), which the encoder refuses ("ufunc 'isnan' not supported"). Every column may be
    missing, as in the data.
    """
    import numpy as np
    from mlflow.types import ColSpec, DataType, Schema

    return Schema(
        [
            ColSpec(
                DataType.double if example[column].dtype == np.float64 else DataType.string,
                column,
                required=False,
            )
            for column in example.columns
        ]
    )


def log_model(mlflow: Any, model: Any, example: Any, task: str) -> str:
    import mlflow.sklearn
    import skops.io
    from mlflow.models import ModelSignature, infer_signature

    predict_fn = "predict" if task == "regression" else "predict_proba"
    outputs = infer_signature(example, getattr(model, predict_fn)(example)).outputs
    signature = ModelSignature(inputs=input_schema(example), outputs=outputs)
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=example,
        pyfunc_predict_fn=predict_fn,
        # Pinned from this environment: inferring requirements costs ~13 s per model.
        pip_requirements=[f"{package}=={version(package)}" for package in RUNTIME_PACKAGES],
        serialization_format="skops",
        # The pipeline is ours and was fitted a moment ago, so its types are trusted.
        skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
    )
    return info.model_uri


def run_track(params: Params) -> dict[str, Any]:
    """Log the evaluated run to MLflow and record the run and model ids (end of `evaluate`)."""
    models, manifest = load_models(params.paths.models, LOGGED_MODELS)
    scores = read_record(params.paths.scores, Scores).root
    intervals = read_record(params.paths.intervals, Intervals)
    example = prepare_frame(read_frame(params.paths.train).head(EXAMPLE_ROWS), manifest.spec)
    data_version = {
        "data.source": params.data.source,
        "data.train_md5": file_md5(params.paths.train),
        "data.test_md5": file_md5(params.paths.test),
        "data.schema_md5": file_md5(params.paths.schema_file),
    }
    mlflow = connect(params)
    report: dict[str, Any] = {
        "tracking_uri": store_identity(mlflow.get_tracking_uri()),
        "experiment": params.mlflow.experiment,
        "data": data_version,
        "runs": {},
    }
    with (
        store_errors(mlflow.get_tracking_uri(), "track"),
        mlflow.start_run(run_name="pipeline") as parent,
    ):
        mlflow.set_tags({**data_version, "task": params.task})
        mlflow.log_params(
            flatten("", {"split": params.split.model_dump(), "seed": params.train.seed})
        )
        for role in (role for role in ROLES if role not in LOGGED_MODELS):  # the floor
            mlflow.log_metrics({f"{role}_test_{k}": v for k, v in scores[role].items()})
        mlflow.log_dict(manifest.model_dump(mode="json"), "manifest.json")
        mlflow.log_artifact(str(params.paths.schema_file))
        # What the models never saw, so a later champion comparison can use only those rows.
        mlflow.log_dict(manifest.split or {}, SPLIT_ARTIFACT)
        report["parent_run_id"] = parent.info.run_id
        for name in LOGGED_MODELS:
            entry = manifest.model(name)
            with mlflow.start_run(run_name=name, nested=True) as run:
                mlflow.set_tags(
                    {
                        **data_version,
                        "task": params.task,
                        "model": name,
                        "model.kind": entry.kind,
                        "artifact.sha256": entry.sha256,
                    }
                )
                mlflow.log_params(
                    flatten(
                        name, {**params.train.roles()[name].model_dump(), "fitted": entry.fitted}
                    )
                )
                mlflow.log_metrics(model_metrics(scores[name], intervals.of(name)))
                model_uri = log_model(mlflow, models[name], example, params.task)
                # The very bytes the gate judges (SHA-256 in `artifact.sha256`): what export
                # serves and what a champion comparison loads, each after checking the hash.
                mlflow.log_artifact(
                    str(params.paths.models / entry.file), artifact_path=JUDGED_ARTIFACT_DIR
                )
                report["runs"][name] = {
                    "run_id": run.info.run_id,
                    "model_uri": model_uri,
                    "artifact_sha256": entry.sha256,
                    "artifact_path": f"{JUDGED_ARTIFACT_DIR}/{entry.file}",
                }
    write_record(TrackingReport.model_validate(report), params.paths.tracking_report)
    return {"experiment": params.mlflow.experiment, "parent_run_id": report["parent_run_id"]}
