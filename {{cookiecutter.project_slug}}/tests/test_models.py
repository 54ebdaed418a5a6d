"""The model catalogue: every kind builds, fits and predicts for every task."""

from __future__ import annotations

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.features import FeatureSpec, prepare_frame
from {{ cookiecutter.package_name }}.models import KINDS, ModelKind, create, register

SPEC = FeatureSpec(numeric=("age", "income"), categorical=("plan", "region"))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_fits_and_predicts_for_every_task(kind, task, frame_for):
    frame = frame_for(task)
    features = prepare_frame(frame, SPEC)
    if task == "regression":
        target = frame["target"].to_numpy(dtype=np.float64)
    else:
        labels = sorted(frame["target"].unique())
        target = np.array([labels.index(value) for value in frame["target"]])
    model = create(kind, {})
    fitted = model.fit(model.build(task, SPEC, seed=0), features, target, SPEC)
    if task == "regression":
        assert fitted.predict(features).shape == (len(frame),)
    else:
        assert fitted.predict_proba(features).shape == (len(frame), len(np.unique(target)))
    importance = model.importance(fitted)
    assert importance is None or set(importance) == set(SPEC.columns)


def test_unknown_kind_lists_the_catalogue():
    with pytest.raises(ValueError, match="the catalogue has: dummy, linear, lightgbm"):
        create("xgboost", {})


def test_a_kind_cannot_be_registered_twice():
    class Again(ModelKind):
        name = "linear"

    with pytest.raises(ValueError, match="registered twice"):
        register(Again)
