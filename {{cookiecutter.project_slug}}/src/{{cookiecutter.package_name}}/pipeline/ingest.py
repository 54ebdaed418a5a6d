"""Stage `ingest`: read the source named in params.yaml (core/source.py, the one reader) and
write the raw batch with a report of what was read and dropped.

Kept apart from the reader so that predict{% if cookiecutter.monitoring == "yes" %}, drift and the monitor workflow{% else %} and drift{% endif %} read a file exactly
as ingest does, without depending on the stage."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd

from {{ cookiecutter.package_name }}.core.config import Params
from {{ cookiecutter.package_name }}.core.records import IngestReport, write_record
from {{ cookiecutter.package_name }}.core.source import Batch, load_source


def write_raw(frame: pd.DataFrame, path: Path) -> None:
    """The raw batch, keeping each row's position in the source as the index (stored only
    when rows were dropped: a plain 0..n-1 index costs nothing in Parquet)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=None)


def ingest_report(params: Params, batch: Batch) -> IngestReport:
    return IngestReport.model_validate(
        {
            "source": params.data.source,
            "rows_read": batch.rows_read,
            "rows": len(batch.frame),
            "columns": batch.frame.shape[1],
            "dropped_columns": list(params.data.drop),
            "dropped_rows": {"missing_target": batch.dropped_missing_target},
            "line_offset": batch.rows.line_offset,
        }
    )


def run_ingest(params: Params) -> dict[str, Any]:
    """Stage `ingest`: source -> paths.raw, and what was read and dropped -> ingest report."""
    batch = load_source(params.data)
    if batch.dropped_missing_target:
        print(
            f"ingest: dropped {batch.dropped_missing_target} of {batch.rows_read} rows whose "
            f"target {params.data.target!r} is missing (data.missing_target: drop)",
            file=sys.stderr,
        )
    write_raw(batch.frame, params.paths.raw)
    report = ingest_report(params, batch)
    write_record(report, params.paths.ingest_report)
    return {"rows": report.rows, "columns": report.columns}
