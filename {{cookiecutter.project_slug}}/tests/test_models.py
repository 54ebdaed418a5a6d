"""The model catalogue: every kind builds, fits and predicts for every task."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }}.core.features import FeatureSpec, prepare_frame
from {{ cookiecutter.package_name }}.core.models import (
    KINDS,
    ModelKind,
    create,
    inner_split,
    register,
)

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


def test_inner_split_is_deterministic_stratified_and_keeps_every_class():
    target = np.array([0] * 90 + [1] * 9 + [2])  # class 2 has a single row
    fit, validation = inner_split(target, share=0.1, min_rows=1, stratify=True, seed=7)
    again = inner_split(target, share=0.1, min_rows=1, stratify=True, seed=7)
    other = inner_split(target, share=0.1, min_rows=1, stratify=True, seed=8)
    assert np.array_equal(fit, again[0]) and np.array_equal(validation, again[1])
    assert not np.array_equal(validation, other[1])
    assert np.array_equal(np.sort(np.concatenate([fit, validation])), np.arange(len(target)))
    assert np.bincount(target[validation], minlength=3).tolist() == [9, 1, 0]
    assert set(target[fit]) == {0, 1, 2}


@pytest.mark.parametrize(("rows", "held_out"), [(100, 25), (300, 50), (1000, 100)])
def test_inner_split_takes_the_share_at_least_min_rows_at_most_a_quarter(rows, held_out):
    target = np.linspace(0, 1, rows)
    _, validation = inner_split(target, share=0.1, min_rows=50, stratify=False, seed=0)
    assert len(validation) == held_out


def test_early_stopping_uses_only_the_training_rows_and_records_the_rounds(frame_for, monkeypatch):
    """The rounds are chosen on rows of the training frame it is given (never the holdout),
    the model is then refit on all of them, and `fitted` names the rounds the model holds."""
    import lightgbm

    frame = frame_for("regression")
    train, holdout = frame.iloc[:200], frame.iloc[200:]
    calls = []
    original = lightgbm.LGBMRegressor.fit

    def spy(self, matrix, y, **options):
        calls.append((np.asarray(matrix), options.get("eval_X")))
        return original(self, matrix, y, **options)

    monkeypatch.setattr(lightgbm.LGBMRegressor, "fit", spy)
    kind = create("lightgbm", {})
    features = prepare_frame(train, SPEC)
    model = kind.fit(
        kind.build("regression", SPEC, seed=3), features, train["target"].to_numpy(), SPEC
    )

    (inner, (validation,)), (refit, no_validation) = calls
    assert no_validation is None
    assert len(inner) + len(validation) == len(refit) == len(train)
    income = 3  # categorical columns first, then age, income
    assert set(validation[:, income]) <= set(train["income"])
    assert not set(validation[:, income]) & (set(holdout["income"]) - set(train["income"]))
    booster = model.named_steps["model"]
    assert kind.fitted == {
        "n_estimators": booster.booster_.current_iteration(),
        "validation_rows": 50,
        "stopped_early": True,
    }
    assert booster.n_estimators == kind.fitted["n_estimators"] < kind.settings.n_estimators

    monkeypatch.setattr(lightgbm.LGBMRegressor, "fit", original)
    twin = create("lightgbm", {})
    same = twin.fit(
        twin.build("regression", SPEC, seed=3), features, train["target"].to_numpy(), SPEC
    )
    assert pickle.dumps(same) == pickle.dumps(model)


def test_without_early_stopping_the_candidate_trains_every_round(frame_for):
    frame = frame_for("binary_classification")
    kind = create("lightgbm", {"n_estimators": 12, "early_stopping_rounds": None})
    model = kind.fit(
        kind.build("binary_classification", SPEC, seed=0),
        prepare_frame(frame, SPEC),
        frame["target"].to_numpy(),
        SPEC,
    )
    assert model.named_steps["model"].booster_.current_iteration() == 12
    assert kind.fitted == {"n_estimators": 12}


def _nonlinear(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Interactions, curves and a ten-level categorical: more than 200 small trees can learn."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    levels = np.array(list("abcdefghij"))
    effect = dict(zip(levels, np.random.default_rng(0).normal(0, 1, 10), strict=True))
    group = rng.choice(levels, rows)
    target = (
        2 * np.sin(2 * x[:, 0])
        + x[:, 1] * x[:, 2]
        + np.abs(x[:, 3])
        + np.where(x[:, 4] > 0, x[:, 5], -x[:, 5])
        + np.array([effect[value] for value in group])
        + rng.normal(0, 1, rows)
    )
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)]).assign(group=group)
    frame.loc[rng.random(rows) < 0.05, "x1"] = np.nan
    return frame, target


def test_default_candidate_beats_the_old_fixed_settings_on_more_data():
    """On 5,000 rows the params.yaml defaults (early stopping, 31 leaves) predict a held-out
    set at least as well as the old fixed 200 trees of 15 leaves."""
    spec = FeatureSpec(numeric=tuple(f"x{i}" for i in range(6)), categorical=("group",))
    train, target = _nonlinear(5000, seed=1)
    holdout, truth = _nonlinear(2000, seed=2)
    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text("utf-8"))
    if params["train"]["candidate"].get("kind") != "lightgbm":
        pytest.skip("train.candidate in params.yaml is not the LightGBM kind these defaults tune")
    defaults = {k: v for k, v in params["train"]["candidate"].items() if k != "kind"}
    old = {
        **defaults,
        "n_estimators": 200,
        "early_stopping_rounds": None,
        "num_leaves": 15,
        "min_child_samples": 10,
    }
    rmse = {}
    for name, settings in {"defaults": defaults, "old": old}.items():
        kind = create("lightgbm", settings)
        model = kind.fit(
            kind.build("regression", spec, 42), prepare_frame(train, spec), target, spec
        )
        error = model.predict(prepare_frame(holdout, spec)) - truth
        rmse[name] = float(np.sqrt(np.mean(error**2)))
    assert rmse["defaults"] <= rmse["old"], rmse
