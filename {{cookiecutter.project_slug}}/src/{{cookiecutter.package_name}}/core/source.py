"""The one reader of a data source (bundled dataset, CSV or Parquet), used by ingest, predict and
drift, so that a file means the same rows and values to every command.

It reads the file the way params.yaml says (separator, decimal and thousands marks) and
applies the column choices made there (drop, forced kinds, rows without a target); judging the
data is the validate stage's job, so that every rule lives in the data contract. What ingest
cannot do without guessing (a duplicated column name, a forced number that is not a number)
stops it with the column's name and the setting that fixes it.

CSV files are read with pyarrow's reader: several times faster than pandas' own on large files,
and it keeps duplicated column names visible instead of renaming them to `name.1`.
"""

from __future__ import annotations

import codecs
import math
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }}.core.config import BUILTIN_PREFIX, DataParams
from {{ cookiecutter.package_name }}.core.errors import PipelineError

# Text that means "no value" in a forced numeric column, besides an empty cell (the same
# markers the CSV reader treats as missing).
MISSING_TOKENS = frozenset(
    {"", "#n/a", "#na", "-nan", "n/a", "na", "nan", "null", "none", "<na>", "-1.#ind", "1.#ind"}
)
SEPARATORS = {";": "semicolon", "\t": "tab", "|": "pipe", ",": "comma"}
DATE_LIKE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?")
# A date with a four-digit year first or last, and an optional time: '2021-03-04',
# '04/03/2021 10:30', '2021-03-04T10:30:00Z' (not a version number such as 1.2.3).
DATE_TEXT = re.compile(
    r"^(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})"
    r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)
MIDNIGHT = re.compile(r"[ T]00:00(:00(\.0+)?)?(Z|[+-]00:?00)?$")
DATE_SHARE = 0.95  # distinct values that must read as dates for a column to be dates
EXAMPLES = 5


@dataclass(frozen=True)
class RowNumbers:
    """How messages name a row of the batch.

    The raw batch keeps each row's 0-based position in the source as its index, also after
    rows were dropped. For a CSV whose rows are one line each, the message gives the file's
    line number instead (the header is line 1), which is what an editor shows.
    """

    line_offset: int | None = None

    def label(self, position: Any) -> str:
        if self.line_offset is None:
            return f"row {int(position)}"
        return f"line {int(position) + self.line_offset}"

    @property
    def legend(self) -> str:
        if self.line_offset is None:
            return "rows are numbered from 0 in the order of the source"
        return "line numbers are those of the CSV file, whose header is line 1"


def shown(value: Any) -> str:
    """A value as a message quotes it: 1 and 'a', never np.int64(1); a whole number read as
    a float as it was written (2021, not 2021.0); a time as its date when it is midnight."""
    if isinstance(value, pd.Timestamp):
        return repr(plain_time(value.isoformat()))
    if isinstance(value, np.generic):
        value = value.item()
    whole = isinstance(value, float) and math.isfinite(value) and value.is_integer()
    if whole and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def plain_time(text: str) -> str:
    """A date or time as text, without a midnight time: '2021-03-04', not
    '2021-03-04 00:00:00.000000000' (how a Parquet timestamp reads as text)."""
    return MIDNIGHT.sub("", text)


def date_sample(values: pd.Series) -> tuple[pd.Series, pd.Series] | None:
    """(distinct texts, their UTC times) of a sample of a text column whose values are dates
    or times, read as split.time_column reads them (ISO 8601, else the format of the first
    value); None for any other column (numbers, or text of which some 5% is not dates).
    Cheap: at most 1,000 distinct values of the first 20,000 rows."""
    if is_numeric_series(values) or pd.api.types.is_bool_dtype(values.dtype):
        return None
    text = as_text(values.iloc[:20_000]).dropna().str.strip()
    text = pd.Series(pd.unique(text[text != ""])[:1000], dtype="string")
    if len(text) < 2 or text.str.match(DATE_TEXT).mean() < DATE_SHARE:
        return None
    times = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    if times.isna().mean() > 1 - DATE_SHARE:
        with warnings.catch_warnings():  # "could not infer format": each value parsed alone
            warnings.simplefilter("ignore")
            fallback = pd.to_datetime(text, utc=True, errors="coerce")
        if fallback.isna().sum() < times.isna().sum():
            times = fallback
    if times.isna().mean() > 1 - DATE_SHARE:
        return None
    return text, times


def separator_hint(columns: list[str], separator: str) -> str:
    """A sentence suggesting data.csv_separator when the header looks split on another mark."""
    if len(columns) > 2:
        return ""
    for mark, name in SEPARATORS.items():
        if mark != separator and any(mark in column for column in columns):
            return (
                f" The header looks {name}-separated ({columns[0][:60]!r}): set "
                f"data.csv_separator: {mark!r} in params.yaml."
            )
    return ""


def _named_twice(names: list[str], path: Path) -> None:
    twice = [name for name, count in Counter(names).items() if count > 1]
    if twice:
        places = {name: [str(i + 1) for i, n in enumerate(names) if n == name] for name in twice}
        listed = ", ".join(
            f"{name!r} (columns {', '.join(where[:-1])} and {where[-1]})"
            for name, where in places.items()
        )
        raise PipelineError(
            f"{path} names columns more than once: {listed}. Rename or remove the copies: a "
            "repeated name is ambiguous (a copied target would become a feature that leaks it)."
        )


def _text_for_temporal(table: Any) -> Any:
    """Dates and times become their ISO text: a model cannot use them as they are, and the
    validate stage tells how to (derive a number, or split by time)."""
    import pyarrow as pa

    for index, field in enumerate(table.schema):
        if pa.types.is_temporal(field.type):
            table = table.set_column(index, field.name, table.column(index).cast(pa.string()))
    return table


def count_lines(path: Path) -> int:
    """Physical lines of a text file (a last line without a newline counts)."""
    lines, last = 0, b"\n"
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 24):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def first_undecodable(path: Path, encoding: str) -> tuple[int, int, bytes] | None:
    """(byte offset, line, the byte) of the first place the file is not valid `encoding`
    text; None when it all decodes. Reads in chunks, so any file size is fine."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, lines = 0, 1
    with path.open("rb") as stream:
        while True:
            chunk = stream.read(1 << 24)
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                data = pending + chunk
                line = lines + data[: error.start].count(b"\n")
                return offset - len(pending) + error.start, line, data[error.start : error.end]
            if not chunk:
                return None
            offset += len(chunk)
            lines += chunk.count(b"\n")


def not_text_message(path: Path, encoding: str) -> str:
    """One line: where the file stops being `encoding` text, and the two ways out."""
    where = first_undecodable(path, encoding)
    at = ""
    if where is not None:
        offset, line, byte = where
        at = f" (byte 0x{byte[:1].hex()} at offset {offset}, line {line})"
    name = "UTF-8" if encoding == "utf-8" else encoding
    return (
        f"{path} is not valid {name} text{at}: re-save it as UTF-8 (e.g. your spreadsheet's "
        "'CSV UTF-8' export), or set data.encoding in params.yaml to the file's encoding "
        "(latin-1 or cp1252 for most files from Excel on Windows)."
    )


def _csv_options(data: DataParams) -> tuple[Any, Any, Any, str]:
    """pyarrow's read, parse and convert options for `data`'s CSV settings, and the codec."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    convert = pcsv.ConvertOptions(
        decimal_point=data.csv_decimal,
        # Forced categorical columns keep the file's text exactly ("007" stays "007").
        column_types={name: pa.string() for name in data.categorical},
        strings_can_be_null=True,
    )
    encoding = codecs.lookup(data.encoding).name  # "UTF8" and "utf-8" alike
    # "utf8" is pyarrow's own spelling: any other makes it transcode (slower).
    read = pcsv.ReadOptions(
        block_size=1 << 24, encoding="utf8" if encoding == "utf-8" else encoding
    )
    return read, pcsv.ParseOptions(delimiter=data.csv_separator), convert, encoding


def _csv_error(path: Path, encoding: str, error: Exception) -> PipelineError:
    message = str(error)
    if isinstance(error, UnicodeDecodeError) or "utf8" in message.lower():
        return PipelineError(not_text_message(path, encoding))
    if "Empty CSV file" in message:
        return PipelineError(f"{path} is empty: it has no header and no rows.")
    return PipelineError(f"cannot read {path} as CSV: {message.splitlines()[0]}")


def _csv_frame(table: Any, path: Path, data: DataParams, encoding: str) -> pd.DataFrame:
    """A table read from a CSV as the pipeline sees it: named columns, dates as text, numbers
    with thousands marks as numbers."""
    import pyarrow as pa

    # A column that is not valid UTF-8 comes back as bytes, not text.
    if any(pa.types.is_binary(field.type) for field in table.schema):
        raise PipelineError(not_text_message(path, encoding))
    names = [name or f"Unnamed: {index}" for index, name in enumerate(table.column_names)]
    _named_twice(names, path)
    table = _text_for_temporal(table.rename_columns(names))
    # split_blocks + self_destruct free each Arrow column as it is converted: lower peak memory.
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    if data.csv_thousands is not None:
        frame = _numbers_with_thousands(frame, data)
    return frame


def read_csv(path: Path, data: DataParams) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    read, parse, convert, encoding = _csv_options(data)
    try:
        table = pcsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    except (UnicodeDecodeError, pa.ArrowInvalid) as error:
        raise _csv_error(path, encoding, error) from None
    return _csv_frame(table, path, data, encoding)


def iter_csv(path: Path, data: DataParams, rows: int) -> Iterator[pd.DataFrame]:
    """A CSV file in frames of at most `rows` rows, read with the options and conversions of
    `read_csv` (pyarrow's streaming reader, one 16 MB block at a time), so a file of any size
    is scored in flat memory and means what it means to ingest."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    read, parse, convert, encoding = _csv_options(data)
    try:
        reader = pcsv.open_csv(
            path, read_options=read, parse_options=parse, convert_options=convert
        )
        for batch in reader:
            table = pa.Table.from_batches([batch])
            for start in range(0, table.num_rows, rows):
                yield _csv_frame(table.slice(start, rows), path, data, encoding)
    except (UnicodeDecodeError, pa.ArrowInvalid) as error:
        raise _csv_error(path, encoding, error) from None


def _numbers_with_thousands(frame: pd.DataFrame, data: DataParams) -> pd.DataFrame:
    """Text columns that are numbers once the thousands mark is removed become numbers.

    The CSV reader has no thousands option; a sample decides cheaply which columns to try.
    """
    for column in frame.columns:
        if column in data.categorical or not pd.api.types.is_string_dtype(frame[column]):
            continue
        sample = frame[column].dropna().head(1000)
        if sample.empty or parse_numbers(sample, data).isna().any():
            continue
        parsed = parse_numbers(frame[column], data)
        if not (parsed.isna() & present(frame[column])).any():
            frame[column] = parsed
    return frame


def read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        _named_twice(list(pq.read_schema(path).names), path)
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise PipelineError(f"cannot read {path} as parquet: {error}") from None
    frame = _text_for_temporal(table).to_pandas()
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()  # an index written with the file is data: keep it as a column
    return frame.reset_index(drop=True)


def read_file(path: Path, data: DataParams, file_format: str | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file, turning every reader failure into a message about the file.

    The source (`file_format` None: from `data.format`) and every other file a command reads
    (predict's input, drift's batch: `file_format` from its suffix) go through here, so a file
    means the same values everywhere: a code forced categorical stays "007", thousands marks and
    decimal commas are read as params.yaml says, a repeated column name is refused."""
    if not path.is_file():
        if file_format is None:
            raise PipelineError(f"data.source {str(path)!r} does not exist (see params.yaml).")
        raise PipelineError(f"{path} does not exist.")
    file_format = file_format or file_format_of(path, data.format)
    frame = read_csv(path, data) if file_format == "csv" else read_parquet(path)
    frame.columns = [str(column) for column in frame.columns]
    return frame


def iter_parquet(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    """A Parquet file in frames of at most `rows` rows, converted as `read_parquet` converts
    the whole file (dates as ISO text), for scoring files larger than memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
        _named_twice(list(handle.schema_arrow.names), path)
        for batch in handle.iter_batches(batch_size=rows):
            yield _text_for_temporal(pa.Table.from_batches([batch])).to_pandas()
    except (pa.ArrowException, OSError) as error:
        raise PipelineError(f"cannot read {path} as parquet: {error}") from None


def file_format_of(path: Path, setting: str) -> str:
    if setting != "auto":
        return setting
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".parquet", ".pq"}:
        raise PipelineError(
            f"cannot tell the format of {str(path)!r} from its extension; set data.format "
            "to csv or parquet in params.yaml."
        )
    return "csv" if suffix == ".csv" else "parquet"


def load_builtin(name: str) -> pd.DataFrame:
    """Load a dataset bundled with scikit-learn, so the first run downloads nothing."""
    from sklearn import datasets  # costs seconds: only for bundled sources

    loader = getattr(datasets, f"load_{name}")
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [str(column) for column in frame.columns]
    return frame


def present(values: pd.Series) -> pd.Series:
    """Cells that hold a value: not missing and not a missing-value marker such as 'NA'."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.notna()
    text = values.astype("string").str.strip().str.lower()
    return values.notna() & ~text.isin(MISSING_TOKENS).fillna(True)


def parse_numbers(values: pd.Series, data: DataParams) -> pd.Series:
    """Text -> float64 with the file's decimal and thousands marks; NaN where it does not parse."""
    if is_numeric_series(values):
        return values.astype("float64")
    text = values.astype("string").str.strip()
    if data.csv_thousands is not None:
        text = text.str.replace(data.csv_thousands, "", regex=False)
    if data.csv_decimal != ".":
        text = text.str.replace(data.csv_decimal, ".", regex=False)
    return pd.to_numeric(text, errors="coerce").astype("float64")


def not_numbers_message(
    column: str, values: pd.Series, bad: pd.Series, rows: RowNumbers, why: str
) -> str:
    """One line: the column, how many present values are not numbers, examples, the fix."""
    offending = values[bad]
    examples = ", ".join(
        f"{shown(value)} ({rows.label(position)})"
        for position, value in offending.head(EXAMPLES).items()
    )
    count = len(offending)
    total = int(present(values).sum())
    sample = [str(value) for value in offending.head(20)]
    if sample and all(DATE_LIKE.match(value) for value in sample):
        fix = (
            "They look like dates: a model cannot use a date as it is. Add a number derived "
            f"from it to your data (e.g. the year, or days since a start date), list {column!r} "
            "in data.drop, or name it in split.time_column to split by time."
        )
    else:
        fix = "Fix these values or empty those cells (an empty cell counts as missing)."
    return (
        f"column {column!r} {why}, but {count} of its {total} values "
        f"{'is' if count == 1 else 'are'} not a number: {examples}. {fix}"
    )


def is_numeric_series(series: pd.Series) -> bool:
    dtype = series.dtype
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def as_text(values: pd.Series) -> pd.Series:
    """A categorical column's values as text, the one type the contract lists and compares.

    Whole floats lose their '.0' ("3", not "3.0"), so a numeric code listed as categorical
    reads as it was written.
    """
    if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
        return values
    if pd.api.types.is_float_dtype(values.dtype):
        whole = values.dropna()
        if (whole == np.floor(whole)).all():
            return values.astype("Int64").astype("string")
    return values.astype("string")


def apply_column_choices(
    frame: pd.DataFrame, data: DataParams, rows: RowNumbers | None = None
) -> pd.DataFrame:
    """Drop ignored columns and force the column kinds listed in params.yaml."""
    rows = rows or RowNumbers()
    columns = list(map(str, frame.columns))
    hint = separator_hint(columns, data.csv_separator)
    if data.target not in columns:
        raise PipelineError(
            f"the target column {data.target!r} (data.target in params.yaml) is not in the data; "
            f"its columns are: {', '.join(columns)}.{hint}"
        )
    named = [*data.drop, *data.categorical, *data.numeric]
    unknown = sorted(set(named) - set(columns))
    if unknown:
        raise PipelineError(
            f"params.yaml names columns the data does not have: {', '.join(unknown)}. "
            f"Available: {', '.join(columns)}.{hint}"
        )
    frame = frame.drop(columns=list(data.drop))
    for column in data.numeric:
        parsed = parse_numbers(frame[column], data)
        bad = parsed.isna() & present(frame[column])
        if bad.any():
            raise PipelineError(
                not_numbers_message(column, frame[column], bad, rows, "is listed in data.numeric")
            )
        frame[column] = parsed
    for column in frame.columns:
        if column in data.categorical or not is_numeric_series(frame[column]):
            frame[column] = as_text(frame[column])
    return frame


def drop_missing_target(frame: pd.DataFrame, data: DataParams) -> tuple[pd.DataFrame, int]:
    """With data.missing_target: drop, rows without a target go (a row without a label can be
    neither trained nor scored); with `error`, they stay for validation to reject."""
    if data.missing_target != "drop":
        return frame, 0
    missing = ~present(frame[data.target])
    return frame[~missing], int(missing.sum())


@dataclass
class Batch:
    """The ingested batch and what ingest did to it."""

    frame: pd.DataFrame
    rows_read: int
    dropped_missing_target: int
    rows: RowNumbers


def repeated_header(frame: pd.DataFrame, path: Path, rows: RowNumbers) -> None:
    """Stop on a row whose values are the column names: the header line of a later batch
    appended to the file. Read as data it would make the target's name a class and every
    numeric column text. A row counts when at least 80% of its cells (and two) hold a column
    name, in any order; only the few rows holding a name in one of the first columns are
    read in full, so a large file costs a few column scans."""
    names = [str(name) for name in frame.columns]
    if len(frame) < 2 or not names:
        return
    need = min(len(names), max(2, math.ceil(0.8 * len(names))))
    known = {*names, *(name.strip() for name in names)}
    text = [name for name in names if pd.api.types.is_string_dtype(frame[name].dtype)]
    # A row with `need` names among its cells has one in any len - need + 1 of its columns.
    window = [name for name in names[: len(names) - need + 1] if name in text]
    hits = [frame[name].isin(known).to_numpy(dtype=bool) for name in window]
    if not hits or not np.logical_or.reduce(hits).any():
        return
    candidates = frame.index[np.logical_or.reduce(hits)]
    cells = frame.loc[candidates, text].astype("string")
    counts = cells.apply(lambda column: column.str.strip().isin(known).fillna(False)).sum(axis=1)
    header = counts.index[counts.to_numpy() >= need]
    if len(header):
        where = ", ".join(rows.label(position) for position in header[:EXAMPLES])
        listed = ", ".join(name.strip() for name in names[:6]) + ", ..." * (len(names) > 6)
        raise PipelineError(
            f"{path}: {where} {'repeats' if len(header) == 1 else 'repeat'} the header "
            f"({listed}), as a batch appended with its own header line leaves it; read as data, "
            "the names would become values (a class named after the target, text in numeric "
            f"columns). Remove the repeated header line{'s' * (len(header) > 1)} from the file "
            "(keep only its first line)."
        )


def load_source(data: DataParams) -> Batch:
    """The raw batch described by params.yaml's `data` section."""
    rows = RowNumbers()
    if data.is_builtin:
        frame = load_builtin(data.source.removeprefix(BUILTIN_PREFIX))
    else:
        path = Path(data.source)
        frame = read_file(path, data)
        frame.index = pd.RangeIndex(len(frame))
        if file_format_of(path, data.format) == "csv":
            if count_lines(path) == len(frame) + 1:
                rows = RowNumbers(line_offset=2)  # one line per row: say which line
            repeated_header(frame, path, rows)
    frame.index = pd.RangeIndex(len(frame))  # the index is the row's position in the source
    rows_read = len(frame)
    frame = apply_column_choices(frame, data, rows)
    frame, dropped = drop_missing_target(frame, data)
    return Batch(frame, rows_read, dropped, rows)
