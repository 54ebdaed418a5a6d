"""params.yaml validation: every mistake stops the pipeline with the offending key's name."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }}.core.config import load_params
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.metrics import primary_metric
from {{ cookiecutter.package_name }}.core.models import role_kinds


def test_valid_params_load(task, settings_for, params_file):
    """The test settings for every task are valid and typed."""
    params = load_params(params_file(settings_for(task)))
    assert params.task == task
    assert params.is_classification == (task != "regression")
    assert params.validate_.bounds == {}
    assert str(params.paths.schema_file) == "schema.yaml"


def _error_for(params_file, settings) -> str:
    with pytest.raises(PipelineError) as caught:
        load_params(params_file(settings))
    return str(caught.value)


def test_unknown_key_is_named(settings_for, params_file):
    """A typo is an error, not a silently ignored setting."""
    settings = settings_for("binary_classification")
    settings["validate"]["max_example"] = 10
    assert "validate.max_example" in _error_for(params_file, settings)


def test_model_settings_are_checked_by_their_kind(settings_for, params_file):
    """A role's settings are checked by the catalogue when train reads them, with the key named;
    params loading itself does not import the catalogue (tests/test_dvc_yaml.py)."""
    settings = settings_for("binary_classification")
    settings["train"]["candidate"]["n_estimator"] = 10
    settings["train"]["baseline"]["kind"] = "linaer"
    params = load_params(params_file(settings))
    with pytest.raises(PipelineError) as caught:
        role_kinds(params.train)
    assert "train.candidate.n_estimator" in str(caught.value)
    assert "train.baseline.kind: unknown model kind 'linaer'" in str(caught.value)


def test_out_of_range_value_is_named(settings_for, params_file):
    settings = settings_for("binary_classification")
    settings["split"]["test_size"] = 1.5
    assert "split.test_size" in _error_for(params_file, settings)


def test_a_declared_bound_is_checked(settings_for, params_file):
    settings = settings_for("regression")
    settings["validate"]["bounds"] = {"age": {"min": 10, "max": 5}}
    assert "validate.bounds.age: min 10.0 is greater than max 5.0" in _error_for(
        params_file, settings
    )
    settings["validate"]["bounds"] = {"age": {}}
    assert "validate.bounds.age: give min, max or both" in _error_for(params_file, settings)


def test_primary_metric_must_belong_to_the_task(settings_for, params_file):
    """rmse means nothing for a classifier."""
    settings = settings_for("binary_classification")
    settings["evaluate"]["primary_metric"] = "rmse"
    params = load_params(params_file(settings))
    with pytest.raises(PipelineError) as caught:
        primary_metric(params.task, params.evaluate.primary_metric)
    message = str(caught.value)
    assert "evaluate.primary_metric" in message
    assert "roc_auc" in message


@pytest.mark.parametrize("source", ["data/raw/data.csv", "/tmp/data.csv", "data.csv"])
def test_source_outside_data_external_is_rejected(settings_for, params_file, source):
    """DVC watches data/external, so a source elsewhere would go untracked."""
    settings = settings_for("regression")
    settings["data"]["source"] = source
    assert "data.source" in _error_for(params_file, settings)


def test_unknown_bundled_dataset_is_rejected(settings_for, params_file):
    settings = settings_for("regression")
    settings["data"]["source"] = "sklearn:housing"
    message = _error_for(params_file, settings)
    assert "data.source" in message
    assert "diabetes" in message


def test_missing_params_file_says_where_to_run(tmp_path):
    with pytest.raises(PipelineError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_invalid_yaml_is_a_pipeline_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("task: [unclosed\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_params(path)


def test_tracking_uri_from_environment_wins(settings_for, params_file, monkeypatch):
    params = load_params(params_file(settings_for("multiclass")))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert params.mlflow.resolved_tracking_uri() == "sqlite:///elsewhere.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert params.mlflow.resolved_tracking_uri() == "sqlite:///mlflow.db"


def test_unknown_model_kind_names_the_role_and_the_catalogue(settings_for, params_file):
    settings = settings_for("binary_classification")
    settings["train"]["candidate"] = {"kind": "xgboost", "n_estimators": 10}
    with pytest.raises(PipelineError) as caught:
        role_kinds(load_params(params_file(settings)).train)
    message = str(caught.value)
    assert "train.candidate" in message
    assert "'xgboost'" in message and "'lightgbm'" in message


def test_a_role_without_a_kind_is_named(settings_for, params_file):
    settings = settings_for("binary_classification")
    settings["train"]["baseline"] = {"C": 1.0}
    message = _error_for(params_file, settings)
    assert "train.baseline" in message and "kind" in message


def test_settings_are_checked_against_the_chosen_kind(settings_for, params_file):
    """`C` is a linear setting: given to LightGBM it is an unknown key."""
    settings = settings_for("binary_classification")
    settings["train"]["candidate"]["C"] = 1.0
    with pytest.raises(PipelineError) as caught:
        role_kinds(load_params(params_file(settings)).train)
    assert "train.candidate.C" in str(caught.value)


def test_registered_model_name_is_restricted(settings_for, params_file):
    """The name goes into registry search filters: a quote broke promote."""
    settings = settings_for("binary_classification")
    settings["mlflow"]["registered_model"] = "churn'model"
    assert "mlflow.registered_model" in _error_for(params_file, settings)
