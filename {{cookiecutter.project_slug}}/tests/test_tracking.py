"""Tracking helpers that decide what reaches MLflow and the reports."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }}.tracking import flatten, model_metrics, redact


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
    scores = {"candidate": {"rmse": 1.0}}
    intervals = {"candidate": {"rmse": {"value": 1.0, "lower": 0.8, "upper": 1.2}}}
    assert model_metrics("candidate", scores, intervals) == {
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

    from {{ cookiecutter.package_name }}.config import load_params
    from {{ cookiecutter.package_name }}.errors import PipelineError
    from {{ cookiecutter.package_name }}.registry import open_store

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlflow.db").touch()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    command = ["promote", "--to", "champion", "--version", "3"]
    monkeypatch.setattr(sys, "argv", ["/x/.venv/bin/{{ cookiecutter.package_name }}", *command])

    def locked(**_: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(mlflow, "MlflowClient", locked)
    params = load_params(params_file(settings_for("binary_classification")))
    with pytest.raises(PipelineError) as caught:
        open_store(params, "promote")
    message = str(caught.value)
    assert "database is locked" in message and "Another process holds" in message
    assert message.endswith(f"uv run {{ cookiecutter.package_name }} {' '.join(command)}")
