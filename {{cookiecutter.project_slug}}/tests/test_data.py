"""Ingest: reading CSV and Parquet, applying the column choices from params.yaml."""

from __future__ import annotations

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.config import DataParams
from {{ cookiecutter.package_name }}.data import (
    apply_column_choices,
    load_source,
    read_file,
    run_ingest,
)
from {{ cookiecutter.package_name }}.errors import PipelineError


def data_params(**overrides) -> DataParams:
    return DataParams(**{"source": "data/external/data.csv", "target": "target", **overrides})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_csv_and_parquet_read_the_same(project, suffix):
    """Both formats give the same frame, with text columns as strings and NaN kept."""
    source = f"data/external/data{suffix}"
    project.write_data(project.frame, source)
    frame = load_source(data_params(source=source))
    assert list(frame.columns) == list(project.frame.columns)
    assert len(frame) == len(project.frame)
    assert pd.api.types.is_string_dtype(frame["plan"])
    assert pd.api.types.is_float_dtype(frame["age"])
    assert frame["age"].isna().sum() == project.frame["age"].isna().sum()
    assert frame["plan"].isna().sum() == project.frame["plan"].isna().sum()


def test_csv_separator_is_used(project):
    path = project.root / "data/external/data.csv"
    project.frame.to_csv(path, index=False, sep=";")
    frame = read_file(path, "csv", ";")
    assert list(frame.columns) == list(project.frame.columns)


def test_decimal_comma_numbers_stay_numeric(project):
    """A file written with a decimal comma reads as numbers once csv_decimal says so."""
    path = project.root / "data/external/data.csv"
    project.frame.to_csv(path, index=False, sep=";", decimal=",")
    assert not pd.api.types.is_float_dtype(read_file(path, "csv", ";")["age"])
    frame = read_file(path, "csv", ";", ",")
    assert pd.api.types.is_float_dtype(frame["age"])
    pd.testing.assert_series_equal(frame["age"], project.frame["age"], check_names=False)


def test_drop_and_forced_types(project):
    """Dropped columns disappear; a numeric code listed as categorical becomes text, and
    text listed as numeric becomes numbers with NaN for what does not parse."""
    frame = project.frame.assign(
        code=[str(i % 3) if i % 7 else "x" for i in range(len(project.frame))]
    )
    frame["region_id"] = (frame.index % 4).astype(int)
    project.write_data(frame)
    loaded = load_source(data_params(drop=["region"], categorical=["region_id"], numeric=["code"]))
    assert "region" not in loaded.columns
    assert pd.api.types.is_string_dtype(loaded["region_id"])
    assert loaded["region_id"].iloc[1] == "1"
    assert pd.api.types.is_numeric_dtype(loaded["code"])
    assert loaded["code"].isna().sum() == sum(1 for i in range(len(frame)) if i % 7 == 0)


def test_empty_file_is_a_pipeline_error(project):
    path = project.root / "data/external/data.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(PipelineError, match="empty"):
        read_file(path, "auto", ",")


def test_missing_file_is_a_pipeline_error(project):
    with pytest.raises(PipelineError, match="does not exist"):
        read_file(project.root / "data/external/nope.csv", "auto", ",")


def test_unknown_extension_asks_for_format(project):
    path = project.root / "data/external/data.txt"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(PipelineError, match=r"data\.format"):
        read_file(path, "auto", ",")


def test_unreadable_parquet_is_a_pipeline_error(project):
    path = project.root / "data/external/data.parquet"
    path.write_text("this is not parquet", encoding="utf-8")
    with pytest.raises(PipelineError, match="cannot read"):
        read_file(path, "auto", ",")


@pytest.mark.parametrize("key", ["drop", "categorical", "numeric"])
def test_unknown_column_in_params_is_named(project, key):
    with pytest.raises(PipelineError, match="no_such_column"):
        apply_column_choices(project.frame, data_params(**{key: ["no_such_column"]}))


def test_column_both_categorical_and_numeric_is_rejected(project):
    with pytest.raises(PipelineError, match="both categorical and numeric: age"):
        apply_column_choices(project.frame, data_params(categorical=["age"], numeric=["age"]))


def test_run_ingest_writes_raw_parquet(project):
    summary = run_ingest(project.params())
    assert summary == {"rows": len(project.frame), "columns": project.frame.shape[1]}
    raw = pd.read_parquet(project.root / "data/raw/data.parquet")
    assert raw.shape == project.frame.shape
