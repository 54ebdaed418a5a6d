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
