"""`predict`: offline batch scoring with the same code and pinned model as the service.

The input is read `serve.batch_rows` rows at a time (CSV with the data settings of params.yaml,
or Parquet), so memory does not grow with the file. Each chunk gets the service's checks: rows
that break the contract go to a rejected-rows file with the record number, field and rule, and
never stop the rest. The output keeps every input column and adds the prediction (and, for
classification, one probability column per class).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from {{ cookiecutter.package_name }}.core.config import Params
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.source import iter_parquet, read_file
from {{ cookiecutter.package_name }}.serving.export import MODEL_NAME
from {{ cookiecutter.package_name }}.serving.scorer import (
    Scorer,
    check_project,
    use_project_store,
)

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _format(path: Path) -> str:
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise PipelineError(f"{path}: use a .csv or .parquet file (the format follows the suffix).")
    return found


def read_chunks(path: Path, params: Params) -> Iterator[pd.DataFrame]:
    """The input in chunks of `serve.batch_rows`, read by the reader ingest uses
    (core/source.py): a Parquet file streams; a CSV file is read whole by pyarrow, then scored
    in chunks (the same types for every chunk, and a code forced categorical stays "007")."""
    if not path.is_file():
        raise PipelineError(f"{path} does not exist.")
    rows = params.serve.batch_rows
    if _format(path) == "parquet":
        yield from iter_parquet(path, rows)
        return
    frame = read_file(path, params.data, file_format="csv")
    for start in range(0, max(len(frame), 1), rows):
        yield frame.iloc[start : start + rows]


class ChunkWriter:
    """Appends frames to a CSV or Parquet file, creating it with the first chunk."""

    def __init__(self, path: Path) -> None:
        self.path, self.kind, self._parquet = path, _format(path), None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        if frame.empty and self.rows:
            return
        if self.kind == "csv":
            frame.to_csv(
                self.path, mode="a" if self.rows else "w", header=not self.rows, index=False
            )
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        self.rows += len(frame)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()


def _with_predictions(chunk: pd.DataFrame, outputs: list[dict[str, Any]]) -> pd.DataFrame:
    scored = chunk.copy()
    scored["prediction"] = [output["prediction"] for output in outputs]
    if outputs and "probabilities" in outputs[0]:
        for label in outputs[0]["probabilities"]:
            scored[f"probability_{label}"] = [output["probabilities"][label] for output in outputs]
    return scored


def load_scorer(tag: str | None) -> tuple[Scorer, str]:
    """The exported model (`tag`, or the last export), refused unless this checkout exported it."""
    use_project_store()
    import bentoml

    wanted = tag or f"{MODEL_NAME}:latest"
    try:
        stored = bentoml.models.get(wanted)
    except bentoml.exceptions.NotFound:
        raise PipelineError(
            f"no model {wanted} in BentoML's model store: run `uv run {MODEL_NAME} export "
            "--proposed` (or --alias champion) first."
        ) from None
    scorer = Scorer(Path(stored.path))
    check_project(scorer.info, str(stored.tag))
    return scorer, str(stored.tag)


def run_predict(
    params: Params, source: Path, output: Path, rejected: Path | None, tag: str | None
) -> dict[str, Any]:
    _format(output)
    rejected = rejected or output.with_name(output.stem + ".rejected.csv")
    if output.resolve() in (source.resolve(), rejected.resolve()):
        raise PipelineError("--output must differ from --input and from the rejected-rows file.")
    scorer, model_tag = load_scorer(tag)
    output.parent.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and renamed at the end: an interrupted run never leaves a
    # half-written file where a complete one was.
    partial = output.with_name(f"{output.stem}.partial{output.suffix}")
    rejected.unlink(missing_ok=True)  # this run's rejected rows only, never an older run's
    writer, refused = ChunkWriter(partial), ChunkWriter(rejected)
    seen = fallback_rows = 0
    try:
        for chunk in read_chunks(source, params):
            chunk = chunk.reset_index(drop=True)
            problems, _unseen = scorer.check(chunk, first_row=seen)
            bad = [problem.row - seen for problem in problems]
            if problems:
                refused.write(
                    pd.DataFrame(
                        {
                            "row": [problem.row for problem in problems],
                            "field": [problem.field for problem in problems],
                            "problem": [problem.message for problem in problems],
                        }
                    )
                )
            good = chunk.drop(index=bad)
            if not good.empty:
                result = scorer.score(good, probabilities=scorer.info.is_classification)
                fallback_rows += len(good) if result.fallback else 0
                writer.write(_with_predictions(good, result.outputs))
            seen += len(chunk)
    finally:
        writer.close()
        refused.close()
    if seen == 0:
        partial.unlink(missing_ok=True)
        raise PipelineError(f"{source} has no rows to score.")
    if writer.rows:
        partial.replace(output)
    else:
        partial.unlink(missing_ok=True)
    return {
        "model": model_tag,
        "model_version": scorer.info.model_version,
        "rows": seen,
        "scored": writer.rows,
        "rejected": refused.rows,
        "rejected_file": str(rejected) if refused.rows else None,
        "fallback_rows": fallback_rows,
        "output": str(output) if writer.rows else None,
    }


def example_request(tag: str | None = None) -> dict[str, Any]:
    """A /v1/predict body with one record the exported model's contract accepts."""
    return {"records": [load_scorer(tag)[0].example_record()]}


if __name__ == "__main__":  # `python -m <package>.batch example`: a body to try the service
    import json
    import sys

    usage = "usage: python -m {{ cookiecutter.package_name }}.serving.predict example"
    if sys.argv[1:] != ["example"]:
        sys.exit(usage)
    print(json.dumps(example_request()))
