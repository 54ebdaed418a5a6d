"""Ingest: read the configured source (bundled dataset or the user's file) into one Parquet file.

Ingest only reads and applies the column choices from params.yaml (drop, forced types); judging
the data is the validate stage's job, so that every rule lives in the data contract.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from {{ cookiecutter.package_name }}.config import BUILTIN_PREFIX, DataParams, Params
from {{ cookiecutter.package_name }}.errors import PipelineError
from {{ cookiecutter.package_name }}.files import write_frame


def load_builtin(name: str) -> pd.DataFrame:
    """Load a dataset bundled with scikit-learn, so the first run downloads nothing."""
    from sklearn import datasets  # costs seconds: only for bundled sources

    loader = getattr(datasets, f"load_{name}")
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [str(column) for column in frame.columns]
    return frame


def read_file(
    path: Path, file_format: str, csv_separator: str, csv_decimal: str = "."
) -> pd.DataFrame:
    """Read a CSV or Parquet file, turning every reader failure into a message about the file."""
    if not path.is_file():
        raise PipelineError(f"data.source {str(path)!r} does not exist (see params.yaml).")
    if file_format == "auto":
        suffix = path.suffix.lower()
        if suffix not in {".csv", ".parquet", ".pq"}:
            raise PipelineError(
                f"cannot tell the format of {str(path)!r} from its extension; set data.format "
                "to csv or parquet in params.yaml."
            )
        file_format = "csv" if suffix == ".csv" else "parquet"
    try:
        if file_format == "csv":
            return pd.read_csv(path, sep=csv_separator, decimal=csv_decimal)
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise PipelineError(f"{path} is empty: it has no header and no rows.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as error:
        raise PipelineError(f"cannot read {path} as {file_format}: {error}") from None


def apply_column_choices(frame: pd.DataFrame, data: DataParams) -> pd.DataFrame:
    """Drop ignored columns and force the column types listed in params.yaml."""
    named = [*data.drop, *data.categorical, *data.numeric]
    unknown = sorted(set(named) - set(frame.columns))
    if unknown:
        raise PipelineError(
            f"params.yaml names columns the data does not have: {', '.join(unknown)}. "
            f"Available: {', '.join(map(str, frame.columns))}."
        )
    both = sorted(set(data.categorical) & set(data.numeric))
    if both:
        raise PipelineError(f"columns listed as both categorical and numeric: {', '.join(both)}.")
    frame = frame.drop(columns=list(data.drop))
    for column in data.categorical:
        frame[column] = frame[column].astype("string")
    for column in data.numeric:
        # Values that are not numbers become NaN here and are counted by validation.
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in frame.columns:
        dtype = frame[column].dtype
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            # One text type for every non-numeric column, whatever the file format said.
            frame[column] = frame[column].astype("string")
    return frame


def load_source(data: DataParams) -> pd.DataFrame:
    """The raw batch described by params.yaml's `data` section."""
    if data.is_builtin:
        frame = load_builtin(data.source.removeprefix(BUILTIN_PREFIX))
    else:
        frame = read_file(Path(data.source), data.format, data.csv_separator, data.csv_decimal)
    frame.columns = [str(column) for column in frame.columns]
    return apply_column_choices(frame, data)


def run_ingest(params: Params) -> dict[str, int]:
    """Stage `ingest`: source -> paths.raw."""
    frame = load_source(params.data)
    write_frame(frame, params.paths.raw)
    return {"rows": len(frame), "columns": frame.shape[1]}
