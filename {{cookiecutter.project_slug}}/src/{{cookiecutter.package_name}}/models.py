"""The model catalogue: every kind of model the pipeline can train, one class each.

A kind says which settings it takes (a pydantic model, so params.yaml is checked before anything
runs), how to build an untrained scikit-learn compatible estimator for a task, and optionally how
to fit it and what its feature importance is. `params.yaml` then names a kind for each role:

    train:
      floor:     {kind: dummy}
      baseline:  {kind: linear, C: 1.0}
      candidate: {kind: lightgbm, n_estimators: 200, ...}

Adding a kind is one class here, decorated with `@register`, plus a role in params.yaml naming it;
the stages, plots, tracking, gate and tests follow (docs/architecture.md, "Add a model").
Heavy libraries are imported inside `build`, so validating params.yaml stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model

if TYPE_CHECKING:
    import pandas as pd

    from {{ cookiecutter.package_name }}.features import FeatureSpec

ROLES = ("floor", "baseline", "candidate")


class KindSettings(BaseModel):
    """Base of a kind's settings: unknown keys are errors, so typos cannot pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelKind:
    """One kind of model. Subclasses set `name` and `Settings` and implement `build`."""

    name: ClassVar[str]
    Settings: ClassVar[type[KindSettings]] = KindSettings

    def __init__(self, settings: KindSettings) -> None:
        self.settings = settings

    def build(self, task: str, spec: FeatureSpec, seed: int) -> Any:
        """An unfitted estimator that takes `features.prepare_frame` output."""
        raise NotImplementedError

    def fit(
        self, estimator: Any, features: pd.DataFrame, target: np.ndarray, spec: FeatureSpec
    ) -> Any:
        return estimator.fit(features, target)

    def importance(self, fitted: Any) -> dict[str, float] | None:
        """Importance per input column, or None: plots.py then measures it by permutation."""
        return None


KINDS: dict[str, type[ModelKind]] = {}


def register(kind: type[ModelKind]) -> type[ModelKind]:
    """Class decorator: make a kind available to params.yaml under its `name`."""
    if kind.name in KINDS:
        raise ValueError(f"model kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


def create(kind: str, settings: dict[str, Any]) -> ModelKind:
    """The kind named in params.yaml with its validated settings (ValueError when unknown)."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; the catalogue has: {', '.join(KINDS)}")
    cls = KINDS[kind]
    return cls(cls.Settings.model_validate(settings))


def role_type() -> Any:
    """The pydantic type of a role in params.yaml: `kind:` picks the kind, whose own settings
    class then checks the rest, so an error names the key (`train.candidate.n_estimators`)."""
    choices = [
        create_model(
            f"{cls.__name__}Choice",
            __base__=cls.Settings,
            kind=(Literal[name], ...),  # type: ignore[valid-type]
        )
        for name, cls in KINDS.items()
    ]
    return Annotated[Union[tuple(choices)], Field(discriminator="kind")]  # noqa: UP007


def _is_regression(task: str) -> bool:
    return task == "regression"


@register
class Dummy(ModelKind):
    """The floor: the class prior or the mean. Any useful model must beat it."""

    name = "dummy"

    def build(self, task: str, spec: FeatureSpec, seed: int) -> Any:
        from sklearn.dummy import DummyClassifier, DummyRegressor

        if _is_regression(task):
            return DummyRegressor(strategy="mean")
        return DummyClassifier(strategy="prior")


@register
class Linear(ModelKind):
    """Logistic (classification) or ridge (regression) regression on imputed, scaled, one-hot
    encoded features: the simple baseline a candidate must beat to count."""

    name = "linear"

    class Settings(KindSettings):
        C: float = Field(1.0, gt=0, description="inverse regularisation (classification)")
        alpha: float = Field(1.0, ge=0, description="ridge regularisation (regression)")
        max_iter: int = Field(1000, ge=1)

    settings: Settings

    def build(self, task: str, spec: FeatureSpec, seed: int) -> Any:
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import Pipeline

        from {{ cookiecutter.package_name }}.features import linear_preprocessor

        options = self.settings
        model: Any = (
            Ridge(alpha=options.alpha, max_iter=options.max_iter, random_state=seed)
            if _is_regression(task)
            else LogisticRegression(C=options.C, max_iter=options.max_iter)
        )
        return Pipeline([("prep", linear_preprocessor(spec)), ("model", model)])


@register
class LightGBM(ModelKind):
    """LightGBM with native categorical splits and native missing-value handling."""

    name = "lightgbm"

    class Settings(KindSettings):
        n_estimators: int = Field(200, ge=1)
        learning_rate: float = Field(0.05, gt=0)
        num_leaves: int = Field(15, ge=2)
        min_child_samples: int = Field(10, ge=1)
        subsample: float = Field(1.0, gt=0, le=1)
        subsample_freq: int = Field(0, ge=0)
        colsample_bytree: float = Field(1.0, gt=0, le=1)
        reg_lambda: float = Field(0.0, ge=0)
        n_jobs: int | None = Field(
            None, description="training threads; null: one per physical core (LightGBM's rule)"
        )

    settings: Settings

    def build(self, task: str, spec: FeatureSpec, seed: int) -> Any:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from sklearn.pipeline import Pipeline

        from {{ cookiecutter.package_name }}.features import tree_preprocessor

        options = {
            **self.settings.model_dump(),
            "random_state": seed,
            # The same model on every run with the same threads; a fixed histogram layout rather
            # than a choice by timing. Serving predicts single-threaded (serving.Scorer).
            "deterministic": True,
            "force_col_wise": True,
            "verbose": -1,
        }
        booster = LGBMRegressor(**options) if _is_regression(task) else LGBMClassifier(**options)
        return Pipeline([("prep", tree_preprocessor(spec)), ("model", booster)])

    def fit(
        self, estimator: Any, features: pd.DataFrame, target: np.ndarray, spec: FeatureSpec
    ) -> Any:
        from {{ cookiecutter.package_name }}.features import categorical_indices

        return estimator.fit(features, target, model__categorical_feature=categorical_indices(spec))

    def importance(self, fitted: Any) -> dict[str, float]:
        """Total gain of the splits on each input column."""
        names = fitted.named_steps["prep"].get_feature_names_out()
        gain = fitted.named_steps["model"].booster_.feature_importance(importance_type="gain")
        return {str(name): float(value) for name, value in zip(names, gain, strict=True)}
