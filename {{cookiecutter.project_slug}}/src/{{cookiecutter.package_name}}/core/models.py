"""The model catalogue: every kind of model the pipeline can train, one class each.

A kind says which settings it takes (a pydantic model, so a typo in params.yaml is named before
anything is trained), how to build an untrained scikit-learn compatible estimator for a task,
and optionally how to fit it and what its feature importance is. `params.yaml` then names a
kind for each role:

    train:
      floor:     {kind: dummy}
      baseline:  {kind: linear, C: 1.0}
      candidate: {kind: lightgbm, n_estimators: 2000, early_stopping_rounds: 50, ...}

Adding a kind is one class here, decorated with `@register`, plus a role in params.yaml naming it;
the stages, plots, tracking, gate and tests follow (docs/architecture.md, "Add a model").
Heavy libraries are imported inside `build`, so validating params.yaml stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from {{ cookiecutter.package_name }}.core.errors import PipelineError

if TYPE_CHECKING:
    import pandas as pd

    from {{ cookiecutter.package_name }}.core.config import TrainParams
    from {{ cookiecutter.package_name }}.core.features import FeatureSpec


class KindSettings(BaseModel):
    """Base of a kind's settings: unknown keys are errors, so typos cannot pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelKind:
    """One kind of model. Subclasses set `name` and `Settings` and implement `build`."""

    name: ClassVar[str]
    Settings: ClassVar[type[KindSettings]] = KindSettings

    def __init__(self, settings: KindSettings) -> None:
        self.settings = settings
        # What fitting chose from the data (e.g. the rounds early stopping kept), recorded in
        # the manifest as `fitted` and logged to MLflow beside the settings.
        self.fitted: dict[str, Any] = {}

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


def role_kinds(train: TrainParams) -> dict[str, ModelKind]:
    """Each role's model kind with its settings checked by the kind's own settings class; every
    problem is reported with its params.yaml key (`train.candidate.n_estimators`)."""
    problems, kinds = [], {}
    for role, choice in train.roles().items():
        where = f"train.{role}"
        if choice.kind not in KINDS:
            problems.append(
                f"  {where}.kind: unknown model kind {choice.kind!r}; the catalogue "
                f"(core/models.py) has: {', '.join(map(repr, KINDS))}"
            )
            continue
        try:
            kinds[role] = create(choice.kind, choice.model_dump(exclude={"kind"}))
        except ValidationError as error:
            for issue in error.errors():
                key = ".".join([where, *(str(part) for part in issue["loc"])])
                problems.append(f"  {key}: {issue['msg'].removeprefix('Value error, ')}")
    if problems:
        raise PipelineError("params.yaml has invalid settings:\n" + "\n".join(problems))
    return kinds


def _is_regression(task: str) -> bool:
    return task == "regression"


# Settings of the LightGBM kind that steer fitting, not the booster itself.
EARLY_STOPPING = ("early_stopping_rounds", "validation_fraction", "min_validation_rows")
# Below this many training rows LightGBM trains single-threaded unless n_jobs is set.
SMALL_DATA_ROWS = 20_000
# The inner validation split never takes more than this share of the training rows.
MAX_VALIDATION_SHARE = 0.25


def inner_split(
    target: np.ndarray, *, share: float, min_rows: int, stratify: bool, seed: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Training-row indices (fit, validation) for early stopping, the same for the same seed.

    `share` of the rows, at least `min_rows` (but at most a quarter of them), drawn within each
    class when `stratify`, and never a class's last row: every class stays in the fitted part.
    """
    count = len(target)
    share = max(share, min(min_rows, count * MAX_VALIDATION_SHARE) / max(count, 1))
    rng = np.random.default_rng(seed)
    groups = (
        [np.flatnonzero(target == label) for label in np.unique(target)]
        if stratify
        else [np.arange(count)]
    )
    picked = [
        rng.permutation(rows)[: min(round(share * len(rows)), len(rows) - 1)] for rows in groups
    ]
    held_out = np.zeros(count, dtype=bool)
    held_out[np.concatenate(picked).astype(np.int64)] = True
    return np.flatnonzero(~held_out), np.flatnonzero(held_out)


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

        from {{ cookiecutter.package_name }}.core.features import linear_preprocessor

        options = self.settings
        model: Any = (
            Ridge(alpha=options.alpha, max_iter=options.max_iter, random_state=seed)
            if _is_regression(task)
            else LogisticRegression(C=options.C, max_iter=options.max_iter)
        )
        return Pipeline([("prep", linear_preprocessor(spec)), ("model", model)])


@register
class LightGBM(ModelKind):
    """LightGBM with native categorical splits and native missing-value handling.

    The number of rounds scales with the data: early stopping on an inner validation split of
    the training rows chooses it (a few dozen on hundreds of rows, up to `n_estimators` on
    hundreds of thousands), and the manifest records it under `fitted.n_estimators`.
    """

    name = "lightgbm"

    class Settings(KindSettings):
        n_estimators: int = Field(
            2000, ge=1, description="boosting rounds; with early stopping, the most it may keep"
        )
        early_stopping_rounds: int | None = Field(
            50,
            ge=1,
            description="stop when the inner validation loss has not improved for this many "
            "rounds, then refit on every training row; null: always n_estimators rounds",
        )
        validation_fraction: float = Field(
            0.1, gt=0, le=0.5, description="share of the training rows early stopping scores"
        )
        min_validation_rows: int = Field(
            50, ge=1, description="at least this many (at most a quarter of the training rows)"
        )
        learning_rate: float = Field(0.05, gt=0)
        num_leaves: int = Field(31, ge=2)
        min_child_samples: int = Field(20, ge=1)
        subsample: float = Field(1.0, gt=0, le=1)
        subsample_freq: int = Field(0, ge=0)
        colsample_bytree: float = Field(1.0, gt=0, le=1)
        reg_lambda: float = Field(0.0, ge=0)
        n_jobs: int | None = Field(
            None,
            description="training threads; null: one below SMALL_DATA_ROWS training rows, "
            "else one per physical core (LightGBM's rule)",
        )

    settings: Settings

    def build(self, task: str, spec: FeatureSpec, seed: int) -> Any:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from sklearn.pipeline import Pipeline

        from {{ cookiecutter.package_name }}.core.features import tree_preprocessor

        options = {
            **self.settings.model_dump(exclude=set(EARLY_STOPPING)),
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
        """Early stopping picks the number of rounds on an inner validation split of the
        training rows (never the holdout); the model is then refit on every training row with
        that many rounds, so the saved model holds exactly the trees it uses."""
        from {{ cookiecutter.package_name }}.core.features import categorical_indices

        categorical = categorical_indices(spec)
        options = self.settings
        if options.n_jobs is None and len(features) < SMALL_DATA_ROWS:
            # On small data threads only wait for each other: one is faster, much faster on a
            # busy machine, and gives the same model on every machine.
            estimator.set_params(model__n_jobs=1)
        self.fitted = {"n_estimators": options.n_estimators}
        if options.early_stopping_rounds is not None:
            rounds, validation_rows = self._early_stopping(
                estimator, features, target, categorical, options.early_stopping_rounds
            )
            if validation_rows:
                estimator.set_params(model__n_estimators=rounds)
                self.fitted = {
                    "n_estimators": rounds,
                    "validation_rows": validation_rows,
                    "stopped_early": rounds < options.n_estimators,
                }
        return estimator.fit(features, target, model__categorical_feature=categorical)

    def _early_stopping(
        self,
        estimator: Any,
        features: pd.DataFrame,
        target: np.ndarray,
        categorical: list[int],
        patience: int,
    ) -> tuple[int, int]:
        """The best number of rounds on the inner validation rows, and how many there were
        (0: too few training rows to hold any out, so no early stopping)."""
        from lightgbm import early_stopping
        from sklearn.base import clone, is_classifier

        options = self.settings
        target = np.asarray(target)
        booster = clone(estimator.named_steps["model"])
        fit_rows, validation_rows = inner_split(
            target,
            share=options.validation_fraction,
            min_rows=options.min_validation_rows,
            stratify=is_classifier(booster),
            seed=booster.random_state,
        )
        if len(validation_rows) == 0:
            return options.n_estimators, 0
        # The encoder sees every training row (category lists, no targets); only the booster's
        # rounds are chosen on the validation rows.
        matrix = np.asarray(clone(estimator.named_steps["prep"]).fit_transform(features))
        booster.fit(
            matrix[fit_rows],
            target[fit_rows],
            eval_X=(matrix[validation_rows],),
            eval_y=(target[validation_rows],),
            categorical_feature=categorical,
            callbacks=[early_stopping(patience, verbose=False)],
        )
        return int(booster.best_iteration_ or options.n_estimators), len(validation_rows)

    def importance(self, fitted: Any) -> dict[str, float]:
        """Total gain of the splits on each input column."""
        names = fitted.named_steps["prep"].get_feature_names_out()
        gain = fitted.named_steps["model"].booster_.feature_importance(importance_type="gain")
        return {str(name): float(value) for name, value in zip(names, gain, strict=True)}
