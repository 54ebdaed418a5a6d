"""Training: the three models fit for each task; the candidate splits on categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.data import run_ingest
from {{ cookiecutter.package_name }}.errors import PipelineError
from {{ cookiecutter.package_name }}.features import FeatureSpec, prepare_frame
from {{ cookiecutter.package_name }}.schema import run_validate
from {{ cookiecutter.package_name }}.split import run_split
from {{ cookiecutter.package_name }}.train import (
    MODEL_NAMES,
    encode_target,
    fit_models,
    load_models,
    run_train,
)


def prepare_stages(project) -> None:
    params = project.params()
    for stage in (run_ingest, run_validate, run_split):
        stage(params)


def test_models_fit_and_reload_for_each_task(make_project, task):
    """run_train saves all three models and the metadata evaluation needs to use them."""
    project = make_project(task)
    prepare_stages(project)
    summary = run_train(project.params())
    assert summary["features"] == 4
    models, meta = load_models(project.root / "models")
    assert tuple(models) == MODEL_NAMES
    assert meta["categorical"] == ["plan", "region"]
    test = pd.read_parquet(project.root / "data/processed/test.parquet")
    features = prepare_frame(test, FeatureSpec(("age", "income"), ("plan", "region")))
    if task == "regression":
        assert meta["classes"] == []
        assert models["candidate"].predict(features).shape == (len(test),)
    else:
        expected = sorted(project.frame["target"].unique().tolist())
        assert meta["classes"] == expected
        probabilities = models["candidate"].predict_proba(features)
        assert probabilities.shape == (len(test), len(expected))


def test_candidate_uses_categorical_splits(make_project):
    """`plan` drives the target, so LightGBM must split on it natively (decision '==')."""
    project = make_project("multiclass")
    prepare_stages(project)
    run_train(project.params())
    models, _ = load_models(project.root / "models")
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
    for name in MODEL_NAMES:
        assert np.array_equal(
            first[name].predict_proba(features), second[name].predict_proba(features)
        )
