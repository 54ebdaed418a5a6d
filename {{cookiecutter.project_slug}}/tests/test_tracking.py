"""Tracking helpers that decide what reaches MLflow and the reports."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }}.core.records import MetricInterval
from {{ cookiecutter.package_name }}.promotion.tracking import (
    flatten,
    model_metrics,
    redact,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://user:secret@mlflow.example.com/", "https://***@mlflow.example.com/"),
        ("https://token@host:5000", "https://***@host:5000"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("http://host:5000/path@x", "http://host:5000/path@x"),
    ],
)
def test_redact_removes_credentials_only(uri, expected):
    assert redact(uri) == expected


def test_flatten_uses_dotted_keys():
    assert flatten("", {"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}


def test_model_metrics_include_interval_bounds():
    intervals = {"rmse": MetricInterval(value=1.0, lower=0.8, upper=1.2)}
    assert model_metrics({"rmse": 1.0}, intervals) == {
        "test_rmse": 1.0,
        "test_rmse_ci_lower": 0.8,
        "test_rmse_ci_upper": 1.2,
    }


def test_a_locked_local_store_is_one_message_naming_the_holder_and_the_full_command(
    monkeypatch, tmp_path, params_file, settings_for
):
    """A locked mlflow.db gave an 80-line SQLAlchemy traceback on every registry command, and
    store errors advised `promote` for a failed `promote --to champion --version 3`."""
    import sqlite3
    import sys

    import mlflow
    import pytest

    from {{ cookiecutter.package_name }}.core.config import load_params
    from {{ cookiecutter.package_name }}.core.errors import PipelineError
    from {{ cookiecutter.package_name }}.promotion.registry import open_store

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlflow.db").touch()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    command = ["promote", "--to", "champion", "--version", "3"]
    script = "/x/.venv/bin/{{ cookiecutter.package_name }}"
    monkeypatch.setattr(sys, "argv", [script, *command])

    def locked(**_: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(mlflow, "MlflowClient", locked)
    params = load_params(params_file(settings_for("binary_classification")))
    with pytest.raises(PipelineError) as caught:
        open_store(params, "promote")
    message = str(caught.value)
    assert "database is locked" in message and "Another process holds" in message
    assert message.endswith(f"uv run {{ cookiecutter.package_name }} {' '.join(command)}")


def test_input_schema_types_columns_by_role_not_by_the_example_values():
    """A categorical column missing in every example row is still text, and all may be missing."""
    import numpy as np
    import pandas as pd

    from {{ cookiecutter.package_name }}.core.features import FeatureSpec, prepare_frame
    from {{ cookiecutter.package_name }}.promotion.tracking import input_schema

    frame = pd.DataFrame({"age": [1.0, np.nan], "plan": [None, None], "region": ["a", None]})
    example = prepare_frame(frame, FeatureSpec(("age",), ("plan", "region")))
    schema = input_schema(example)
    assert [(spec.name, spec.type.name) for spec in schema.inputs] == [
        ("age", "double"),
        ("plan", "string"),
        ("region", "string"),
    ]
    assert not any(spec.required for spec in schema.inputs)


@pytest.mark.slow  # logs to and loads from MLflow (about 20 s): CI runs it
def test_logged_model_scores_its_input_example_with_a_missing_categorical(frame_for):
    """The pyfunc model MLflow loads predicts on the example it was logged with, also when a
    categorical column is missing in every example row (it used to be typed double, and the
    encoder then failed with "ufunc 'isnan' not supported")."""
    import mlflow
    import numpy as np
    from mlflow.models import Model

    from {{ cookiecutter.package_name }}.core.features import FeatureSpec, prepare_frame
    from {{ cookiecutter.package_name }}.core.models import create
    from {{ cookiecutter.package_name }}.promotion.tracking import log_model

    spec = FeatureSpec(numeric=("age", "income"), categorical=("plan", "region"))
    frame = frame_for("binary_classification")
    features = prepare_frame(frame, spec)
    kind = create("lightgbm", {"n_estimators": 5, "early_stopping_rounds": None})
    model = kind.fit(kind.build("binary_classification", spec, 0), features, frame["target"], spec)
    example = features.head(5).copy()
    example["plan"] = np.nan
    example = prepare_frame(example, spec)
    mlflow.set_experiment("tests")
    with mlflow.start_run():
        uri = log_model(mlflow, model, example, "binary_classification")
    loaded = mlflow.pyfunc.load_model(uri)
    saved = Model.load(uri).load_input_example(mlflow.artifacts.download_artifacts(uri))
    expected = model.predict_proba(example)
    np.testing.assert_allclose(np.asarray(loaded.predict(saved)), expected)
    np.testing.assert_allclose(np.asarray(loaded.predict(example)), expected)
