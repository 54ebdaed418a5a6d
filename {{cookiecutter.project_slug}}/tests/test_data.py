"""Ingest: reading CSV and Parquet as params.yaml says, and applying its column choices."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.core.config import DataParams, load_params
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.source import (
    RowNumbers,
    apply_column_choices,
    load_source,
    read_file,
)
from {{ cookiecutter.package_name }}.pipeline.ingest import run_ingest

CSV = "data/external/data.csv"


def data_params(**overrides) -> DataParams:
    return DataParams(**{"source": CSV, "target": "target", **overrides})


def write_text(project, text: str, name: str = CSV):
    path = project.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_csv_and_parquet_read_the_same(project, suffix):
    """Both formats give the same frame, with text columns as strings and NaN kept."""
    source = f"data/external/data{suffix}"
    project.write_data(project.frame, source)
    frame = load_source(data_params(source=source)).frame
    assert list(frame.columns) == list(project.frame.columns)
    assert len(frame) == len(project.frame)
    assert pd.api.types.is_string_dtype(frame["plan"])
    assert pd.api.types.is_float_dtype(frame["age"])
    assert frame["age"].isna().sum() == project.frame["age"].isna().sum()
    assert frame["plan"].isna().sum() == project.frame["plan"].isna().sum()


def test_csv_separator_is_used(project):
    path = project.root / CSV
    project.frame.to_csv(path, index=False, sep=";")
    frame = read_file(path, data_params(csv_separator=";"))
    assert list(frame.columns) == list(project.frame.columns)


def test_decimal_comma_numbers_stay_numeric(project):
    """A file written with a decimal comma reads as numbers once csv_decimal says so."""
    path = project.root / CSV
    project.frame.to_csv(path, index=False, sep=";", decimal=",")
    assert not pd.api.types.is_float_dtype(read_file(path, data_params(csv_separator=";"))["age"])
    frame = read_file(path, data_params(csv_separator=";", csv_decimal=","))
    assert pd.api.types.is_float_dtype(frame["age"])
    pd.testing.assert_series_equal(frame["age"], project.frame["age"], check_names=False)


def test_thousands_marks_are_read_as_numbers(project):
    """'3.504' with csv_thousands '.' is 3504, and '1.234,5' is 1234.5."""
    path = write_text(project, "weight;price;target\n3.504;1.234,5;0\n970;12,25;1\n4.732;0,5;0\n")
    frame = read_file(path, data_params(csv_separator=";", csv_decimal=",", csv_thousands="."))
    assert frame["weight"].tolist() == [3504.0, 970.0, 4732.0]
    assert frame["price"].tolist() == [1234.5, 12.25, 0.5]
    comma = write_text(project, 'weight,target\n"3,504",0\n970,1\n"1,000,000",0\n')
    assert read_file(comma, data_params(csv_thousands=","))["weight"].tolist() == [
        3504.0,
        970.0,
        1e6,
    ]


def test_thousands_and_decimal_marks_must_differ():
    with pytest.raises(ValidationError, match="csv_thousands and csv_decimal"):
        data_params(csv_decimal=",", csv_thousands=",")


def test_forced_categorical_keeps_the_text_and_drop_removes(project):
    """A numeric code listed as categorical keeps its text exactly ('007', not 7.0)."""
    frame = project.frame.assign(code=[f"{i % 3:03d}" for i in range(len(project.frame))])
    project.write_data(frame)
    loaded = load_source(data_params(drop=["region"], categorical=["code"])).frame
    assert "region" not in loaded.columns
    assert pd.api.types.is_string_dtype(loaded["code"])
    assert loaded["code"].iloc[1] == "001"


def test_forced_numeric_parses_numbers_written_as_text(project):
    frame = project.frame.assign(code=[str(i) for i in range(len(project.frame))])
    frame.loc[5, "code"] = ""
    project.write_data(frame.astype({"code": "string"}), "data/external/data.parquet")
    loaded = load_source(data_params(source="data/external/data.parquet", numeric=["code"])).frame
    assert pd.api.types.is_float_dtype(loaded["code"])
    assert loaded["code"].isna().sum() == 1


def test_forced_numeric_with_text_stops_naming_the_values_and_lines(project):
    """A value that is present and not a number never becomes NaN silently (item 4)."""
    frame = project.frame.assign(code=[str(i % 3) for i in range(len(project.frame))])
    frame.loc[[3, 10], "code"] = ["x", "fifty"]
    frame.loc[4, "code"] = None  # a real missing value is not a problem
    project.write_data(frame)
    with pytest.raises(PipelineError) as caught:
        load_source(data_params(numeric=["code"]))
    message = str(caught.value)
    assert "'code' is listed in data.numeric" in message
    assert "2 of its 299 values are not a number" in message
    assert "'x' (line 5)" in message  # header is line 1, row 3 is line 5
    assert "'fifty' (line 12)" in message


def test_forced_numeric_dates_say_how_to_use_them(project):
    frame = project.frame.assign(Year=pd.date_range("1970-01-01", periods=300).astype(str))
    project.write_data(frame)
    with pytest.raises(PipelineError, match=r"look like dates.*data\.drop.*split\.time_column"):
        load_source(data_params(numeric=["Year"]))


@pytest.mark.parametrize("order", ["same", "shuffled"])
def test_a_header_line_appended_with_a_batch_is_named(project, order):
    """Was: the header line became a row, reported first as a third class 'target' (and the
    numeric columns as text mixed with numbers)."""
    later = project.frame.iloc[200:]
    if order == "shuffled":
        later = later[["target", "plan", "age", "region", "income"]]
    path = project.root / CSV
    path.write_text(
        project.frame.iloc[:200].to_csv(index=False) + later.to_csv(index=False), encoding="utf-8"
    )
    with pytest.raises(PipelineError) as caught:
        load_source(data_params())
    message = str(caught.value)
    assert "line 202 repeats the header (age, income, plan, region, target)" in message
    assert "Remove the repeated header line from the file" in message
    assert "class" in message and "\n" not in message


def test_values_that_are_column_names_are_not_a_header(project):
    """One cell holding a column's name (a category called 'plan') is data, not a header."""
    frame = project.frame.copy()
    frame.loc[5, "plan"] = "plan"
    frame.loc[6, ["plan", "region"]] = ["region", "plan"]
    project.write_data(frame)
    assert len(load_source(data_params()).frame) == len(frame)


def test_duplicate_column_names_are_named(project):
    """pandas would silently rename the copy 'target.1', a feature that leaks the target."""
    write_text(project, "age,target,plan,target\n1,0,a,0\n2,1,b,1\n")
    with pytest.raises(PipelineError, match=r"'target' \(columns 2 and 4\)"):
        load_source(data_params())


def test_duplicate_column_names_in_parquet_are_named(project):
    table = pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4])], names=["x", "x"])
    pq.write_table(table, project.root / "data/external/dup.parquet")
    with pytest.raises(PipelineError, match=r"'x' \(columns 1 and 2\)"):
        read_file(project.root / "data/external/dup.parquet", data_params())


def test_a_wrong_separator_suggests_the_right_one(project):
    path = project.root / CSV
    project.frame.to_csv(path, index=False, sep=";")
    with pytest.raises(PipelineError, match=r"data\.csv_separator: ';'"):
        load_source(data_params())


def test_missing_targets_are_dropped_and_counted(project):
    """data.missing_target: drop (the default) drops the rows; each kept row keeps its
    position in the source, so messages can still name its line."""
    frame = project.frame.astype({"target": "Int64"})
    frame.loc[[0, 7, 8], "target"] = pd.NA
    project.write_data(frame)
    batch = load_source(data_params())
    assert batch.dropped_missing_target == 3
    assert len(batch.frame) == len(frame) - 3
    assert batch.frame.index[:3].tolist() == [1, 2, 3]
    assert batch.rows.label(batch.frame.index[6]) == "line 11"  # row 9, after three drops
    kept = load_source(data_params(missing_target="error"))
    assert (kept.dropped_missing_target, len(kept.frame)) == (0, len(frame))


def test_rows_are_named_by_position_when_lines_do_not_match(project):
    """A quoted value spanning lines breaks the row-to-line mapping: say 'row', not 'line'."""
    path = write_text(project, 'note,target\n"two\nlines",0\nplain,1\n')
    batch = load_source(data_params())
    assert batch.rows == RowNumbers(None)
    assert batch.rows.label(1) == "row 1"
    assert len(pd.read_csv(path)) == len(batch.frame) == 2


def test_empty_file_is_a_pipeline_error(project):
    path = write_text(project, "")
    with pytest.raises(PipelineError, match="empty"):
        read_file(path, data_params())


def test_missing_file_is_a_pipeline_error(project):
    with pytest.raises(PipelineError, match="does not exist"):
        read_file(project.root / "data/external/nope.csv", data_params())


def test_unknown_extension_asks_for_format(project):
    path = write_text(project, "a,b\n1,2\n", "data/external/data.txt")
    with pytest.raises(PipelineError, match=r"data\.format"):
        read_file(path, data_params())


def test_unreadable_parquet_is_a_pipeline_error(project):
    path = write_text(project, "this is not parquet", "data/external/data.parquet")
    with pytest.raises(PipelineError, match="cannot read"):
        read_file(path, data_params())


@pytest.mark.parametrize("key", ["drop", "categorical", "numeric"])
def test_unknown_column_in_params_is_named(project, key):
    with pytest.raises(PipelineError, match="no_such_column"):
        apply_column_choices(project.frame, data_params(**{key: ["no_such_column"]}))


def test_missing_target_column_is_named(project):
    with pytest.raises(PipelineError, match=r"data\.target"):
        apply_column_choices(project.frame.drop(columns="target"), data_params())


def test_column_both_categorical_and_numeric_is_rejected():
    with pytest.raises(ValidationError, match="both categorical and numeric: age"):
        data_params(categorical=["age"], numeric=["age"])


def test_run_ingest_writes_raw_parquet_and_its_report(project):
    summary = run_ingest(project.params())
    assert summary["rows"] == len(project.frame)
    raw = pd.read_parquet(project.root / "data/raw/data.parquet")
    assert raw.shape == project.frame.shape
    report = json.loads((project.root / "reports/ingest.json").read_text())
    assert report["line_offset"] == 2
    assert report["dropped_rows"] == {"missing_target": 0}


def test_a_latin_1_csv_names_the_byte_and_line_and_the_fix(project):
    """Was: a UnicodeDecodeError traceback from pandas (the UTF-8 message never reached)."""
    path = project.root / CSV
    frame = project.frame.assign(plan=project.frame["plan"].replace("plus", "plus-café"))
    frame.to_csv(path, index=False, encoding="latin-1")
    first = next(i for i, plan in enumerate(frame["plan"]) if plan == "plus-café")
    with pytest.raises(PipelineError) as caught:
        load_source(data_params())
    message = str(caught.value)
    assert message.startswith(f"{CSV} is not valid UTF-8 text (byte 0xe9 at offset ")
    assert f"line {first + 2})" in message
    assert "re-save it as UTF-8" in message and "data.encoding" in message
    assert "\n" not in message


def test_data_encoding_reads_a_latin_1_csv(project):
    path = project.root / CSV
    frame = project.frame.assign(plan=project.frame["plan"].replace("plus", "plus-café"))
    frame.to_csv(path, index=False, encoding="latin-1")
    read = load_source(data_params(encoding="latin-1")).frame
    assert "plus-café" in set(read["plan"])


def test_an_unknown_encoding_is_named():
    with pytest.raises(ValidationError, match="unknown text encoding 'latin-9000'"):
        data_params(encoding="latin-9000")


@pytest.mark.parametrize(
    "source", ["data/external/../data.csv", "data/external/../../elsewhere/data.csv"]
)
def test_a_source_that_leaves_data_external_is_refused(project, source):
    """Was: accepted (data/external is among the parents of data/external/../x.csv), so DVC
    no longer watched the file."""
    project.write_params(data={"source": source})
    refused = r"data\.source: .* is not under data/external/"
    with pytest.raises(PipelineError, match=refused) as caught:
        load_params(project.root / "params.yaml")
    assert "uv run dvc add data/external/data.csv" in str(caught.value)


def test_a_source_inside_data_external_may_name_a_subdirectory(project):
    project.write_data(project.frame, "data/external/2024/data.csv")
    project.write_params(data={"source": "data/external/./2024/data.csv"})
    assert load_params(project.root / "params.yaml").data.source == "data/external/./2024/data.csv"


def test_a_csv_streams_in_frames_that_read_as_ingest_reads(project, monkeypatch):
    """predict reads its input through iter_csv: frames of at most `rows` rows, in flat memory
    (never the whole file: pyarrow's whole-file reader is not called), with the same values as
    the source reader gives ingest: a forced categorical code stays "007", a thousands mark and
    a decimal comma are read as params.yaml says."""
    import pyarrow.csv as pcsv

    from {{ cookiecutter.package_name }}.core.source import iter_csv

    lines = ["code;amount;target"] + [f"{i:03d};1.{i:03d},5;{i % 2}" for i in range(25)]
    path = write_text(project, "\n".join(lines) + "\n")
    data = data_params(csv_separator=";", csv_decimal=",", csv_thousands=".", categorical=["code"])
    whole = read_file(path, data)
    monkeypatch.setattr(pcsv, "read_csv", lambda *args, **kwargs: pytest.fail("whole file"))
    frames = list(iter_csv(path, data, 10))
    assert [len(frame) for frame in frames] == [10, 10, 5]
    streamed = pd.concat(frames, ignore_index=True)
    pd.testing.assert_frame_equal(streamed, whole)
    assert streamed["code"].iloc[7] == "007" and streamed["amount"].iloc[7] == 1007.5
