"""Files a crash or a full disk leaves damaged: a model cut short, DVC's lock file."""

from __future__ import annotations

import pytest
from dvc.repo import Repo

from {{ cookiecutter.package_name }}.core.artifacts import (
    MANIFEST_FILE,
    file_sha256,
    load_manifest,
    load_model,
)
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.pipeline.ingest import run_ingest
from {{ cookiecutter.package_name }}.pipeline.split import run_split
from {{ cookiecutter.package_name }}.pipeline.train import run_train
from {{ cookiecutter.package_name }}.pipeline.validate import run_validate
from {{ cookiecutter.package_name }}.promotion.preconditions import stale_outputs


def test_a_truncated_model_file_is_named_with_how_to_restore_it(project):
    """Was: 'were the libraries upgraded since training?' for a file written cut short (its
    SHA-256 recorded as written, as on a full disk)."""
    params = project.params()
    for stage in (run_ingest, run_validate, run_split, run_train):
        stage(params)
    models = project.root / "models"
    path = models / "candidate.joblib"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    manifest = (models / MANIFEST_FILE).read_text()
    entry = load_manifest(models).models["candidate"]
    (models / MANIFEST_FILE).write_text(manifest.replace(entry.sha256, file_sha256(path)))
    with pytest.raises(PipelineError) as caught:
        load_model(models, load_manifest(models).models["candidate"])
    message = str(caught.value)
    assert f"{path} is truncated or corrupt" in message
    assert "uv run dvc checkout models" in message and "uv run dvc repro -f train" in message
    assert "upgraded" not in message


def test_a_corrupt_dvc_lock_file_says_what_to_delete(tmp_path, monkeypatch):
    """Was: 'cannot read the pipeline's state (dvc status): Unable to read RWLock-file
    ... JSON structure is corrupted', with no way forward."""
    monkeypatch.chdir(tmp_path)
    Repo.init(str(tmp_path), no_scm=True).close()
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  copy:\n    cmd: cp in.txt out.txt\n    deps: [in.txt]\n    outs: [out.txt]\n"
    )
    (tmp_path / "in.txt").write_text("x\n")
    with Repo(str(tmp_path)) as repo:
        repo.reproduce()
    assert stale_outputs(tmp_path) == []
    (tmp_path / ".dvc/tmp/rwlock").write_bytes(b'{"read": {"out.txt": [{"pid": 1')
    with pytest.raises(PipelineError) as caught:
        stale_outputs(tmp_path)
    message = str(caught.value)
    assert "DVC's lock file .dvc/tmp/rwlock is corrupt" in message
    assert "`rm .dvc/tmp/rwlock`" in message and "no dvc command is running" in message
