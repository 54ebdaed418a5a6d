"""Training: the three roles fit for each task, described by one manifest; the catalogue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.core.artifacts import (
    ROLES,
    load_manifest,
    load_models,
)
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.features import FeatureSpec, prepare_frame
from {{ cookiecutter.package_name }}.pipeline.ingest import run_ingest
from {{ cookiecutter.package_name }}.pipeline.split import run_split
from {{ cookiecutter.package_name }}.pipeline.train import (
    encode_target,
    fit_models,
    run_train,
)
from {{ cookiecutter.package_name }}.pipeline.validate import run_validate


def prepare_stages(project) -> None:
    params = project.params()
    for stage in (run_ingest, run_validate, run_split):
        stage(params)


def test_models_fit_and_reload_for_each_task(make_project, task):
    """run_train saves all three models and the manifest evaluation needs to use them."""
    project = make_project(task)
    prepare_stages(project)
    summary = run_train(project.params())
    assert summary["features"] == 4
    assert summary["models"] == {"floor": "dummy", "baseline": "linear", "candidate": "lightgbm"}
    models, manifest = load_models(project.root / "models")
    assert tuple(models) == ROLES
    assert manifest.categorical == ["plan", "region"]
    assert manifest.models["candidate"].settings["n_estimators"] == 30
    test = pd.read_parquet(project.root / "data/processed/test.parquet")
    features = prepare_frame(test, FeatureSpec(("age", "income"), ("plan", "region")))
    if task == "regression":
        assert manifest.classes == []
        assert models["candidate"].predict(features).shape == (len(test),)
    else:
        expected = sorted(project.frame["target"].unique().tolist())
        assert manifest.classes == expected
        probabilities = models["candidate"].predict_proba(features)
        assert probabilities.shape == (len(test), len(expected))


def test_candidate_uses_categorical_splits(make_project):
    """`plan` drives the target, so LightGBM must split on it natively (decision '==')."""
    project = make_project("multiclass")
    prepare_stages(project)
    run_train(project.params())
    models, _ = load_models(project.root / "models", ("candidate",))
    booster = models["candidate"].named_steps["model"].booster_
    dump = booster.dump_model()
    decisions = set()

    def walk(node):
        if "split_feature" in node:
            decisions.add((node["split_feature"], node["decision_type"]))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in dump["tree_info"]:
        walk(tree["tree_structure"])
    assert (0, "==") in decisions, "no categorical split on plan"
    assert all(kind == "<=" for feature, kind in decisions if feature >= 2)


def test_binary_task_with_three_classes_is_refused(make_project, frame_for):
    """Validation stops such a batch first; train still refuses a split that got past it."""
    project = make_project("binary_classification")
    prepare_stages(project)
    frame_for("multiclass").to_parquet(project.root / "data/processed/train.parquet", index=False)
    with pytest.raises(PipelineError, match="set task: multiclass"):
        run_train(project.params())


def test_train_without_schema_names_the_missing_stage(project):
    with pytest.raises(PipelineError, match=r"schema\.yaml does not exist"):
        run_train(project.params())


def test_encode_target_uses_sorted_class_order_and_rejects_unseen():
    assert encode_target(pd.Series(["b", "a", "c"]), ["a", "b", "c"]).tolist() == [1, 0, 2]
    with pytest.raises(PipelineError, match=r"\['z'\]"):
        encode_target(pd.Series(["a", "z"]), ["a", "b"])


def test_fit_models_is_deterministic(project):
    """Same seed, same data: the same predictions, so reruns do not move the metrics."""
    prepare_stages(project)
    params = project.params()
    frame = pd.read_parquet(project.root / "data/processed/train.parquet")
    spec = FeatureSpec(("age", "income"), ("plan", "region"))
    features = prepare_frame(frame, spec)
    target = encode_target(frame["target"], [0, 1])
    first = fit_models(params, spec, features, target)
    second = fit_models(params, spec, features, target)
    for role in ROLES:
        assert np.array_equal(
            first[role][1].predict_proba(features), second[role][1].predict_proba(features)
        )


def test_positive_class_is_chosen_by_the_setting(make_project, frame_for):
    """With `good/bad` labels the larger label in sorted order would be positive: `good`."""
    project = make_project("binary_classification")
    frame = frame_for("binary_classification")
    frame["target"] = frame["target"].map({1: "bad", 0: "good"})
    project.write_data(frame)
    project.write_params(data={"positive_class": "bad"})
    prepare_stages(project)
    run_train(project.params())
    manifest = load_manifest(project.root / "models")
    assert manifest.classes == ["good", "bad"]
    assert manifest.positive_class == "bad"

    project.write_params(data={"positive_class": "ugly"})
    with pytest.raises(PipelineError, match=r"data\.positive_class 'ugly' is not a class"):
        run_train(project.params())


def test_default_positive_class_is_the_larger_label(make_project):
    project = make_project("binary_classification")
    prepare_stages(project)
    run_train(project.params())
    manifest = load_manifest(project.root / "models")
    assert manifest.classes == [0, 1] and manifest.positive_class == 1


def test_a_corrupted_model_is_refused_by_its_hash(project):
    prepare_stages(project)
    run_train(project.params())
    path = project.root / "models/candidate.joblib"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(PipelineError, match="was changed or corrupted"):
        load_models(project.root / "models")
    (project.root / "models/manifest.json").write_text("{}")
    with pytest.raises(PipelineError, match="is not a model manifest"):
        load_models(project.root / "models")
