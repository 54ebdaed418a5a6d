"""The MLflow model registry: register the gate's artifact, move the aliases, roll back.

Aliases: `challenger` is the newest version the gate approved (what a canary serves);
`champion` is what production serves. Each version records, as tags:

- where it came from: `artifact.sha256` (the file the gate judged), `model.kind`, `model.role`,
  `git.commit` and `git.dirty`, `params.md5`, `data.*_md5`, the gate's decision and summary;
- its time as champion: `champion.previous` (the version it replaced: what `rollback` returns
  to) and `champion.since`; `override.*` when a person overrode a refusal, with the reason.

The rollback history is therefore the chain of `champion.previous` tags, written on the new
champion *before* the alias moves: the alias move is the single write that changes who serves,
and a failure before it leaves everything as it was. Moves take a lock (local SQLite store) and
check afterwards that the alias is theirs, so two concurrent moves cannot both report success.
"""

from __future__ import annotations

import datetime
import getpass
import hashlib
import json
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from {{ cookiecutter.package_name }}.core.config import Params
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.records import GateReport

if TYPE_CHECKING:  # mlflow takes seconds to import: only where a store is opened
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from {{ cookiecutter.package_name }}.core.artifacts import ModelManifest

Args = ParamSpec("Args")
Found = TypeVar("Found")

CHALLENGER, CHAMPION = "challenger", "champion"
TAG_SHA = "artifact.sha256"
TAG_DECISION = "gate.decision"
TAG_PREVIOUS = "champion.previous"
TAG_SINCE = "champion.since"
LOCK_TIMEOUT_SECONDS = 60
PKG = "{{ cookiecutter.package_name }}"


def model_name(params: Params) -> str:
    return params.mlflow.registered_model or params.mlflow.experiment


def sqlite_file(uri: str) -> Path | None:
    """The database file of a local SQLite store, or None for any other store."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


@dataclass
class Store:
    """The registry of one registered model, and how to report its failures."""

    client: MlflowClient
    uri: str
    name: str
    retry: str  # the command to run again after a store error

    def calls(self) -> AbstractContextManager[None]:
        """A context in which the store's own exceptions become one user-facing message."""
        from {{ cookiecutter.package_name }}.promotion.tracking import store_errors

        return store_errors(self.uri, self.retry)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise alias moves on a local store; a server relies on the check after a move."""
        database = sqlite_file(self.uri)
        if database is None:
            yield
            return
        # filelock: an OS lock on every platform (fcntl is POSIX only), released when the
        # process dies, so a killed command never leaves the registry locked.
        from filelock import FileLock, Timeout

        lock_path = database.with_name(database.name + ".lock")
        try:
            with FileLock(lock_path, timeout=LOCK_TIMEOUT_SECONDS, poll_interval=0.1):
                yield
        except Timeout:
            raise PipelineError(
                f"another command has held {lock_path} for over {LOCK_TIMEOUT_SECONDS} s; "
                "nothing was changed. Run again when it has finished."
            ) from None


def open_store(params: Params, retry: str, *, must_exist: bool = True) -> Store | None:
    """The registry named by MLFLOW_TRACKING_URI (or params.yaml).

    A local SQLite store that does not exist is an error when `must_exist` (a typo in the URI
    must not look like an empty registry), and None otherwise (nothing registered yet).
    """
    from {{ cookiecutter.package_name }}.promotion.tracking import configure, redact

    uri = params.mlflow.resolved_tracking_uri()
    database = sqlite_file(uri)
    if database is not None and not database.is_file():
        if not must_exist:
            return None
        raise PipelineError(
            f"the MLflow store {redact(uri)} does not exist (no file {database}): nothing has "
            "been tracked or registered there. Check MLFLOW_TRACKING_URI and the directory you "
            "run from; `uv run dvc repro` creates the local store."
        )
    configure(params)
    from mlflow import MlflowClient

    from {{ cookiecutter.package_name }}.promotion.tracking import store_errors

    with store_errors(uri, retry):  # a local store opens its database here (locked: a message)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return Store(client, uri, model_name(params), retry)


def _not_found(error: Exception) -> bool:
    return "RESOURCE_DOES_NOT_EXIST" in str(getattr(error, "error_code", "")) or (
        "not found" in str(error).lower()
    )


def _lookup(call: Callable[Args, Found], *args: Args.args, **kwargs: Args.kwargs) -> Found | None:
    """`call(*args)`, or None when the store says the thing does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return call(*args, **kwargs)
    except MlflowException as error:
        if _not_found(error):
            return None
        raise


def alias_version(store: Store, alias: str) -> ModelVersion | None:
    with store.calls():
        return _lookup(store.client.get_model_version_by_alias, store.name, alias)


def is_registered(store: Store) -> bool:
    with store.calls():
        return _lookup(store.client.get_registered_model, store.name) is not None


def get_version(store: Store, version: int) -> ModelVersion:
    with store.calls():
        found = _lookup(store.client.get_model_version, store.name, str(version))
    if found is None:
        raise PipelineError(
            f"model {store.name!r} has no version {version}: `uv run {PKG} models` lists them."
        )
    return found


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout


def git_state() -> dict[str, str]:
    """The commit and whether the working tree had uncommitted changes to tracked files."""
    commit = _git("rev-parse", "HEAD")
    changes = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git.commit": commit.strip() if commit else "unknown",
        "git.dirty": "unknown" if changes is None else str(bool(changes.strip())).lower(),
    }


def params_md5(params: Params) -> str:
    """Hash of the validated settings, whichever file they were read from."""
    canonical = params.model_dump_json(by_alias=True).encode()
    return hashlib.md5(canonical, usedforsecurity=False).hexdigest()


def gate_summary(gate_report: GateReport) -> str:
    """The decision and each check's status: small enough for a tag, always valid JSON.

    The full report (values, thresholds) is an artifact of the model's run: gate/gate.json.
    """
    summary = {
        "decision": gate_report.decision,
        "proposed": gate_report.proposed,
        "checks": {check.name: check.status for check in gate_report.checks},
    }
    return json.dumps(summary, separators=(",", ":"))


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _who() -> str:
    email = _git("config", "user.email")
    return email.strip() if email and email.strip() else getpass.getuser()


def override_tags(
    action: str, reason: str, existing: dict[str, str] | None = None
) -> dict[str, str]:
    """The override tags, keeping every earlier override of the version in `override.history`
    (a JSON list, oldest first): a second override must not erase the first one's reason."""
    record = {"action": action, "reason": reason, "by": _who(), "at": now()}
    existing = existing or {}
    try:
        history = json.loads(existing.get("override.history", "[]"))
    except json.JSONDecodeError:
        history = []
    if existing.get("override.reason") and not history:
        history = [
            {key: existing.get(f"override.{key}", "") for key in ("action", "reason", "by", "at")}
        ]
    history.append(record)
    return {
        **{f"override.{key}": value for key, value in record.items()},
        "override.history": json.dumps(history, separators=(",", ":")),
    }


@dataclass(frozen=True)
class Artifact:
    """The model the gate judged, as logged to MLflow (see preconditions.py)."""

    role: str
    kind: str
    sha256: str
    run_id: str
    model_uri: str


def register(
    params: Params, store: Store, artifact: Artifact, gate_report: GateReport, tags: dict
) -> dict[str, Any]:
    """Register the artifact (once: a version with the same SHA-256 is reused) as challenger."""
    with store.locked(), store.calls():
        existing = [
            version
            for version in store.client.search_model_versions(f"name='{store.name}'")
            if version.tags.get(TAG_SHA) == artifact.sha256
        ]
        if existing:
            version = min(existing, key=lambda found: int(found.version))
        else:
            version = _create_version(store, artifact, tags)
            store.client.log_dict(
                artifact.run_id, gate_report.model_dump(mode="json"), "gate/gate.json"
            )
        previous = _lookup(store.client.get_model_version_by_alias, store.name, CHALLENGER)
        store.client.set_registered_model_alias(store.name, CHALLENGER, version.version)
    return {
        "model": store.name,
        "alias": CHALLENGER,
        "version": int(version.version),
        "previous": int(previous.version) if previous else None,
        "reused": bool(existing),
    }


def _create_version(store: Store, artifact: Artifact, tags: dict[str, str]) -> ModelVersion:
    """Create the version; never leave behind a registered model that has no version."""
    created = False
    if _lookup(store.client.get_registered_model, store.name) is None:
        store.client.create_registered_model(store.name, description="Registered by the gate.")
        created = True
    # A logged model's URI is models:/<model id>; a tracking server wants that id given too.
    model_id = artifact.model_uri.removeprefix("models:/")
    try:
        return store.client.create_model_version(
            store.name,
            source=artifact.model_uri,
            run_id=artifact.run_id,
            tags=tags,
            model_id=model_id if artifact.model_uri.startswith("models:/m-") else None,
        )
    except Exception:
        if created:
            store.client.delete_registered_model(store.name)
        raise


def move_champion(
    store: Store,
    version: int,
    *,
    expected: int | None,
    previous_pointer: bool,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Give `champion` to `version`, if it is still held by `expected` (None: nobody).

    `previous_pointer` records `expected` as the version a later rollback returns to; a rollback
    itself leaves the pointers as they are, so rolling back twice walks two steps back.
    """
    with store.locked(), store.calls():
        holder = _lookup(store.client.get_model_version_by_alias, store.name, CHAMPION)
        current = int(holder.version) if holder else None
        if current != expected:
            raise PipelineError(
                f"champion moved from v{expected} to v{current} while this command ran; nothing "
                f"was changed. Check `uv run {PKG} models` and run again."
            )
        written = {TAG_SINCE: now(), **(tags or {})}
        if previous_pointer and expected is not None:
            written[TAG_PREVIOUS] = str(expected)
        for key, value in written.items():
            store.client.set_model_version_tag(store.name, str(version), key, value)
        store.client.set_registered_model_alias(store.name, CHAMPION, str(version))
        after = _lookup(store.client.get_model_version_by_alias, store.name, CHAMPION)
        if after is None or int(after.version) != version:
            raise PipelineError(
                f"another command moved champion to v{after.version if after else None} at the "
                f"same time; this move (to v{version}) lost. Check `uv run {PKG} models` and "
                "run again if it is still wanted."
            )
    return {"model": store.name, "alias": CHAMPION, "previous": expected, "version": version}


def champion_history(store: Store, start: int | None = None) -> list[int]:
    """The champion and the versions it replaced, newest first (following champion.previous)."""
    if start is None:
        holder = alias_version(store, CHAMPION)
        if holder is None:
            return []
        start = int(holder.version)
    chain: list[int] = []
    version: int | None = start
    while version is not None and version not in chain:
        chain.append(version)
        found = get_version(store, version)
        previous = found.tags.get(TAG_PREVIOUS)
        version = int(previous) if previous else None
    return chain


def rollback(store: Store, to_version: int | None, override: str | None) -> dict[str, Any]:
    """Give `champion` back to the version it replaced, or to `to_version`."""
    holder = alias_version(store, CHAMPION) if is_registered(store) else None
    if holder is None:
        raise PipelineError(f"model {store.name!r} has no champion: there is nothing to roll back.")
    current = int(holder.version)
    if to_version is None:
        previous = holder.tags.get(TAG_PREVIOUS)
        if not previous:
            raise PipelineError(
                f"champion v{current} of {store.name!r} replaced no earlier version, so there is "
                "nothing to roll back to; name one with `rollback --to VERSION`."
            )
        target = int(previous)
        pointer = False
    else:
        target, pointer = to_version, True
        if to_version == current:
            raise PipelineError(f"version {to_version} is already the champion; nothing changed.")
    tags = {}
    try:
        verify_usable(store, target)
    except PipelineError as error:
        if override is None:
            raise PipelineError(
                f"refusing to give champion back to version {target}: {error} To do it anyway, "
                f"add --override --reason 'why' (recorded on the version): "
                f"`uv run {PKG} rollback --to {target} --override --reason '...'`."
            ) from None
        tags = override_tags("rollback", override, get_version(store, target).tags)
        pointer = True
    return move_champion(store, target, expected=current, previous_pointer=pointer, tags=tags)


def verify_usable(store: Store, version: int) -> None:
    """Refuse a version with no gate record or whose stored bytes are not the judged ones."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="verify-") as scratch:
        load_registered(store, version, Path(scratch))


APPROVED, OVERRIDDEN = "approved", "overridden"


def gate_record(version: int, tags: dict[str, str]) -> str:
    """APPROVED (the gate said promote) or OVERRIDDEN (a person overrode its refusal, with a
    recorded reason); any other version is refused wherever it would be used.

    A version registered outside `promote` carries no artifact hash or gate decision: nothing
    says what it is, so nothing may serve it.
    """
    decision = tags.get(TAG_DECISION)
    if not tags.get(TAG_SHA) or decision is None:
        raise PipelineError(
            f"version {version} carries no gate record ({TAG_SHA}, {TAG_DECISION}): it was not "
            f"registered by `uv run {PKG} promote`, so nothing says what it is. Register models "
            f"only through `promote`; `uv run {PKG} models` lists the gated versions."
        )
    if decision == "promote":
        return APPROVED
    if tags.get("override.reason"):
        return OVERRIDDEN
    raise PipelineError(
        f"version {version} did not pass the gate ({TAG_DECISION}={decision}, failed: "
        f"{tags.get('gate.failed_checks', 'unknown')}) and no override is recorded on it."
    )


@dataclass(frozen=True)
class RegisteredModel:
    """A registered version, loaded from the very bytes the gate judged (hash checked)."""

    version: int
    model: Any
    manifest: ModelManifest  # of the pipeline run that trained it
    tags: dict[str, str]
    file: Path  # the downloaded judged bytes (inside the caller's directory)


def download_judged(
    store: Store, run_id: str, artifact_path: str, sha256: str, directory: Path, what: str
) -> Path:
    """Download a logged model file and check it is the file with `sha256` (before unpickling)."""
    import mlflow.artifacts

    from {{ cookiecutter.package_name }}.core.artifacts import file_sha256

    with store.calls():
        try:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=artifact_path, dst_path=str(directory)
                )
            )
        except Exception as error:
            if "not found" not in str(error).lower() and "no such file" not in str(error).lower():
                raise
            raise PipelineError(
                f"{what}: its run {run_id} holds no judged artifact {artifact_path} (registered "
                "by an older version of this project, or its artifacts were deleted); it cannot "
                "be verified, so it is not used."
            ) from None
    actual = file_sha256(local)
    if actual != sha256:
        raise PipelineError(
            f"{what}: the stored artifact has SHA-256 {actual[:12]}, not the {sha256[:12]} "
            "registered: it was changed in the store after registration. It is not used; "
            "check who can write to the store (docs/promotion.md, threat model)."
        )
    return local


def load_registered(store: Store, version: int, directory: Path) -> RegisteredModel:
    """A version's judged model, verified: a gate record, and stored bytes with its hash."""
    import joblib
    import mlflow.artifacts

    from {{ cookiecutter.package_name }}.core.artifacts import ModelManifest

    found = get_version(store, version)
    tags = dict(found.tags)
    gate_record(version, tags)
    role = tags.get("model.role", "candidate")
    run_id = found.run_id
    if not run_id:  # registered by hand from a file, not from a tracked run
        raise PipelineError(
            f"version {version} records no MLflow run, so its judged bytes cannot be found: "
            "register models with `uv run dvc repro` and `promote`."
        )
    path = tags.get("artifact.path") or f"judged/{role}.joblib"
    local = download_judged(
        store, run_id, path, tags[TAG_SHA], directory / f"v{version}", f"version {version}"
    )
    pipeline_run = tags.get("pipeline.run_id")
    if not pipeline_run:
        raise PipelineError(f"version {version} records no pipeline run (pipeline.run_id).")
    with store.calls():
        manifest = ModelManifest.model_validate(
            mlflow.artifacts.load_dict(f"runs:/{pipeline_run}/manifest.json")
        )
    try:
        model = joblib.load(local)
    except Exception as error:  # same bytes as judged, so an environment problem
        raise PipelineError(
            f"cannot load version {version} ({type(error).__name__}: {error}); were the "
            "libraries upgraded since it was trained? `uv sync --locked`."
        ) from None
    return RegisteredModel(version, model, manifest, tags, local)


def champion_version(store: Store) -> int | None:
    """The version holding `champion`, or None when there is none."""
    if not is_registered(store):
        return None
    holder = alias_version(store, CHAMPION)
    return None if holder is None else int(holder.version)


def list_versions(store: Store) -> list[dict[str, Any]]:
    if not is_registered(store):
        return []
    rows = []
    with store.calls():
        found = store.client.search_model_versions(f"name='{store.name}'")
        for item in found:
            # search results leave `aliases` empty on some stores; a direct lookup fills it.
            version = store.client.get_model_version(store.name, item.version)
            tags = version.tags
            rows.append(
                {
                    "version": int(version.version),
                    "aliases": sorted(version.aliases),
                    "kind": tags.get("model.kind", "-"),
                    "gate": tags.get(TAG_DECISION, "unknown"),
                    "previous": tags.get(TAG_PREVIOUS, ""),
                    "override": tags.get("override.reason", ""),
                    "git_commit": tags.get("git.commit", "")[:12]
                    + ("+dirty" if tags.get("git.dirty") == "true" else ""),
                }
            )
    return sorted(rows, key=lambda row: row["version"])
