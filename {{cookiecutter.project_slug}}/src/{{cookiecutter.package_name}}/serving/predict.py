"""`predict`: offline batch scoring with the same code and pinned model as the service.

The input is read `serve.batch_rows` rows at a time (CSV with the data settings of params.yaml,
or Parquet), so memory does not grow with the file. Each chunk gets the service's checks: rows
that break the contract go to a rejected-rows file with the record number, field and rule, and
never stop the rest; columns that are not features follow serve.extra_columns, as in the
service. The output keeps every input column and adds the prediction (and, for
classification, one probability column per class). Categories of scored rows the model never
saw are counted per column, as the service counts them, and reported with a few examples; so are
numbers of scored rows outside the range their feature had in training (`observed` in
schema.yaml: scored, never refused; the service's `model_out_of_range_values_total`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from {{ cookiecutter.package_name }}.core.config import Params
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.source import iter_csv, iter_parquet
from {{ cookiecutter.package_name }}.serving.export import MODEL_NAME
from {{ cookiecutter.package_name }}.serving.scorer import (
    Scorer,
    check_project,
    outside_observed,
    present_text,
    use_project_store,
)

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# Distinct values remembered per column for the unseen-categories report, so its memory does not
# grow with the file (an open-ended column can have a new value in every row); beyond it the
# rows are still counted, and the distinct counts are marked as lower bounds.
MAX_TRACKED = 10_000
EXAMPLES = 5


def _format(path: Path) -> str:
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise PipelineError(f"{path}: use a .csv or .parquet file (the format follows the suffix).")
    return found


def read_chunks(path: Path, params: Params) -> Iterator[pd.DataFrame]:
    """The input in chunks of `serve.batch_rows`, streamed by the reader ingest uses
    (core/source.py): the same types for the same text, a code forced categorical stays
    "007", and memory stays flat whatever the file size."""
    if not path.is_file():
        raise PipelineError(f"{path} does not exist.")
    rows = params.serve.batch_rows
    if _format(path) == "parquet":
        yield from iter_parquet(path, rows)
    else:
        yield from iter_csv(path, params.data, rows)


class ChunkWriter:
    """Appends frames to a CSV or Parquet file, creating it with the first chunk."""

    def __init__(self, path: Path) -> None:
        self.path, self.kind = path, _format(path)
        self._parquet: Any = None  # a pyarrow ParquetWriter once the first chunk is written
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


class UnseenReport:
    """Per categorical column, the scored rows whose value the model never saw (the service's
    `model_unseen_categories_total`), how many distinct such values and the most frequent few;
    for an open-ended column (no category list in the contract), also the distinct values the
    file has, and `checked: false` when the model keeps no list of its training values."""

    def __init__(self, scorer: Scorer) -> None:
        self.listed = list(scorer.known)
        self.open_ended = list(scorer.open_ended)
        self.checked = set(scorer.known) | set(scorer.trained)
        self.rows = dict.fromkeys(self.checked, 0)
        self.values: dict[str, dict[str, int]] = {name: {} for name in self.checked}
        self.distinct: dict[str, set[str]] = {name: set() for name in self.open_ended}
        self.truncated: set[str] = set()

    def add(self, frame: pd.DataFrame, unseen: dict[str, dict[str, int]]) -> None:
        for name, counts in unseen.items():
            self.rows[name] += sum(counts.values())
            tracked = self.values[name]
            for value, count in counts.items():
                if value in tracked or len(tracked) < MAX_TRACKED:
                    tracked[value] = tracked.get(value, 0) + count
                else:
                    self.truncated.add(name)
        for name in self.open_ended:
            seen = self.distinct[name]
            new = set(present_text(frame[name])) - seen
            room = MAX_TRACKED - len(seen)
            if len(new) > room:
                self.truncated.add(name)
                new = set(sorted(new)[:room])
            seen.update(new)

    def summary(self) -> dict[str, dict[str, Any]]:
        """{column: {kind, rows, distinct, examples, ...}}: listed columns with unseen values,
        and every open-ended column."""
        report: dict[str, dict[str, Any]] = {}
        for name in [*self.listed, *self.open_ended]:
            open_ended = name in self.distinct
            if not open_ended and not self.rows[name]:
                continue
            entry: dict[str, Any] = {"kind": "open-ended" if open_ended else "listed"}
            if open_ended:
                entry["file_distinct"] = len(self.distinct[name])
            entry["checked"] = name in self.checked
            if name in self.checked:
                counts = self.values[name]
                frequent = sorted(counts, key=lambda value: (-counts[value], value))
                entry |= {
                    "rows": self.rows[name],
                    "distinct": len(counts),
                    "examples": frequent[:EXAMPLES],
                }
            entry["truncated"] = name in self.truncated  # distinct counts are lower bounds
            report[name] = entry
        return report


def describe_unseen(report: dict[str, dict[str, Any]]) -> list[str]:
    """The lines `predict` prints for its unseen-categories report (none when all is known)."""
    lines = []
    for name, entry in report.items():
        more = "+" if entry["truncated"] else ""
        label = repr(name)
        if entry["kind"] == "open-ended":
            label += f" (open-ended, {entry['file_distinct']}{more} distinct values in the file)"
        if not entry["checked"]:
            lines.append(
                f"{label}: not checked for new values (the model keeps no list of its "
                "training values)"
            )
        elif entry["rows"]:
            examples = ", ".join(map(repr, entry["examples"]))
            etc = ", ..." if entry["distinct"] > len(entry["examples"]) else ""
            rows, distinct = entry["rows"], entry["distinct"]
            lines.append(
                f"{label}: {rows} {'row' if rows == 1 else 'rows'} with {distinct}{more} "
                f"{'value' if distinct == 1 and not more else 'values'} the model never saw "
                f"({examples}{etc}); their predictions may be unreliable"
            )
    return lines


def describe_outside(report: dict[str, dict[str, Any]]) -> list[str]:
    """The lines `predict` prints for values of scored rows outside the observed range."""
    lines = []
    for name, entry in report.items():
        count, (low, high) = entry["values"], entry["observed"]
        lines.append(
            f"{name!r}: {count} {'value' if count == 1 else 'values'} outside the range seen in "
            f"training [{low:g}, {high:g}] (scored; their predictions may be less reliable)"
        )
    return lines


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
    unseen = UnseenReport(scorer)
    outside: dict[str, int] = {}
    seen = fallback_rows = 0
    try:
        for chunk in read_chunks(source, params):
            if not seen:
                scorer.check_columns(chunk.columns, source)
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
                unseen.add(good, scorer.unseen(good))
                for name, count in outside_observed(good, scorer.contract).items():
                    outside[name] = outside.get(name, 0) + count
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
        "unseen_categories": unseen.summary(),
        # Per numeric feature, how many values of scored rows lie outside its observed range.
        "outside_observed_range": {
            name: {"values": outside[name], "observed": list(scorer.observed[name])}
            for name in scorer.observed
            if name in outside
        },
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
