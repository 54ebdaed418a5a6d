"""Warnings: what in a batch deserves a person's look but does not stop the pipeline.

Each warning is a plain dict `{"column", "kind", "message"}` (the validation report lists them,
the console prints them, the gate report copies them), and its message names the setting that
fixes it. Kinds:

- `identifier`: a feature with a different value in (nearly) every row, such as an id or a name;
- `row_order`: a numeric feature that rises (or falls) with the row order, such as a row number;
- `leak`: a feature that alone predicts the target almost perfectly (judged on distinct rows:
  copies of a row agree with each other, which is not predictive power);
- `duplicate_rows`: many rows that repeat another row exactly (features and target), as an
  export or a join that doubled rows leaves them;
- `number_format`: a column whose values suggest a CSV setting (decimal comma, thousands mark)
  or that is text only because of a few values that are not numbers;
- `date`: a feature whose values are dates or times: as text it is a category per date, and
  new rows bring dates the model never saw (a time to split by, or to derive a number from);
- `constant`: a feature with a single value in every row that has one (nothing to learn).

The checks are cheap by design (numpy and pandas over a sample, no scikit-learn), so they run on
every batch in well under a second, whatever its size.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }}.core.config import DataParams
from {{ cookiecutter.package_name }}.core.source import (
    as_text,
    date_sample,
    is_numeric_series,
    parse_numbers,
    plain_time,
    shown,
)

MIN_ROWS = 50  # fewer rows say too little about uniqueness or predictive power
SAMPLE_ROWS = 50_000
UNIQUE_SHARE = 0.99
# A feature "predicts the target almost perfectly" when it removes 98% of the errors of
# always guessing the most common class, or (regression) has a rank correlation or a share of
# explained variance of 0.99.
LEAK_ERROR_SHARE = 0.02
LEAK_CORRELATION = 0.99
MAX_GROUP_SHARE = 0.05  # categorical leak check only when groups average 20+ rows
DUPLICATE_SHARE = 0.05  # repeated rows worth a warning (a few are common in real data)
DECIMAL_COMMA = re.compile(r"^[-+]?(\d{1,3}(\.\d{3})+|\d+),\d+$")
THOUSANDS = {
    mark: re.compile(r"^[-+]?\d{1,3}(" + re.escape(mark) + r"\d{3})+([.,]\d+)?$")
    for mark in (".", ",", " ", "'")
}
PLAIN_INTEGER = re.compile(r"^[-+]?\d+$")


def warning(column: str, kind: str, message: str) -> dict[str, str]:
    return {"column": column, "kind": kind, "message": message}


def _sample(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    return frame if len(frame) <= SAMPLE_ROWS else frame.sample(n=SAMPLE_ROWS, random_state=seed)


# --------------------------------------------------------------------------------------------
# Identifiers and row numbers
# --------------------------------------------------------------------------------------------
def _strictly_monotonic(values: np.ndarray) -> bool:
    steps = np.diff(values)
    return bool(len(steps) and ((steps > 0).all() or (steps < 0).all()))


def _nearly_unique(values: pd.Series) -> bool:
    """Different in (nearly) every row; the head decides first, so most columns cost little."""
    head = values.iloc[:20_000]
    if head.nunique() < UNIQUE_SHARE * len(head):
        return False
    return values.nunique() >= UNIQUE_SHARE * len(values)


def identifier_warnings(frame: pd.DataFrame, features: list[str]) -> list[dict[str, str]]:
    found = []
    for name in features:
        if name not in frame.columns:
            continue
        column = frame[name]
        filled = int(column.notna().sum())
        if filled < MIN_ROWS or filled < 0.9 * len(frame):
            continue
        if is_numeric_series(column):
            numbers = column.to_numpy(dtype="float64", na_value=np.nan)
            numbers = numbers[~np.isnan(numbers)]
            if _strictly_monotonic(numbers):
                found.append(
                    warning(
                        name,
                        "row_order",
                        f"column {name!r} rises or falls with the row order, like a row number "
                        "or a timestamp: a model can learn the file's order from it, which new "
                        "data does not have. List it in data.drop (or, for a time, name it in "
                        "split.time_column to split by time).",
                    )
                )
                continue
            head = numbers[:20_000]
            if not (head == np.floor(head)).all() or not _nearly_unique(pd.Series(numbers)):
                continue
        elif not _nearly_unique(column.dropna()) or date_sample(column) is not None:
            continue  # a unique date gets the date advice (date_warnings), not this one
        found.append(
            warning(
                name,
                "identifier",
                f"column {name!r} has a different value in (nearly) every row, like an id or a "
                "name: nothing learnt from it carries over to new rows. List it in data.drop "
                "(or, for an id, name it in split.key to split by it).",
            )
        )
    return found


# --------------------------------------------------------------------------------------------
# Dates and constants
# --------------------------------------------------------------------------------------------
EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


def _date_message(name: str, text: pd.Series, times: pd.Series) -> str:
    valid = times.notna().to_numpy()
    text, times = text[valid], times[valid]
    order = np.argsort(times.to_numpy(), kind="stable")
    first, last = plain_time(text.iloc[order[0]]), plain_time(text.iloc[order[-1]])
    span = f"e.g. {first!r}" if first == last else f"e.g. {first!r} and {last!r}"
    after = (times - EPOCH).to_numpy(dtype="timedelta64[ns]").astype("int64")
    if times.min() >= EPOCH and times.max() < EPOCH + pd.Timedelta(days=1) and after.max() < 10**6:
        example = int(after[order[-1]])
        return (
            f"column {name!r} holds times that all fall in the first millisecond of 1970-01-01 "
            f"({last!r} is {example} nanoseconds after 1970-01-01 00:00), which is what "
            f"numbers such as years ({example}) turned into times look like: store {name!r} "
            "as plain numbers in the source (then it is a numeric feature), or list it in "
            "data.drop. As it is, every new value is a category the model never saw."
        )
    return (
        f"column {name!r} holds dates or times ({span}): as a feature each date is a "
        "category, and later rows bring dates the model never saw. To hold out the latest "
        f"rows, set split.method: time and split.time_column: {name} (the split then reads "
        f"it; it is no longer a feature); otherwise list it in data.drop, or add a number "
        "derived from it to your data (the year, the month, days since a start date)."
    )


def date_warnings(
    frame: pd.DataFrame, features: list[str], data: DataParams
) -> list[dict[str, str]]:
    """Text features whose values are dates or times (a column forced with data.categorical
    is the user's choice and is left alone)."""
    found = []
    for name in features:
        if name not in frame.columns or name in data.categorical:
            continue
        dates = date_sample(frame[name])
        if dates is not None:
            found.append(warning(name, "date", _date_message(name, *dates)))
    return found


def constant_warnings(frame: pd.DataFrame, features: list[str]) -> list[dict[str, str]]:
    """Features with one value in every row that has one: nothing to learn from. (A feature
    with no value at all stops validation instead.)"""
    found = []
    for name in features:
        if name not in frame.columns:
            continue
        if frame[name].iloc[:1000].nunique() > 1:
            continue  # the head decides for most columns, at no cost
        values = frame[name].dropna()
        if values.empty or values.nunique() > 1:
            continue
        value = values.iloc[0]
        empty = len(frame) - len(values)
        where = (
            f"every one of the {len(frame)} rows"
            if not empty
            else f"every row that has a value ({empty} of the {len(frame)} are empty: if an "
            "empty cell means something, encode it as a second value)"
        )
        found.append(
            warning(
                name,
                "constant",
                f"column {name!r} holds the same value, {shown(value)}, in {where}: a model "
                f"learns nothing from it. List it in data.drop.",
            )
        )
    return found


# --------------------------------------------------------------------------------------------
# Leaks: one feature that predicts the target on its own
# --------------------------------------------------------------------------------------------
def _purity(groups: np.ndarray, labels: np.ndarray, n_labels: int) -> float:
    """Share of rows whose label is the most common one of their group."""
    counts = np.bincount(groups * n_labels + labels, minlength=(groups.max() + 1) * n_labels)
    return float(counts.reshape(-1, n_labels).max(axis=1).sum() / len(labels))


def _groups(values: pd.Series) -> np.ndarray | None:
    """Integer group ids: each value its own group when there are few values, otherwise
    runs of neighbouring values (sorted), so a numeric column that separates the classes
    anywhere along its range shows up as nearly pure groups. None: too many categories."""
    if is_numeric_series(values) and values.nunique() > 50:
        order = np.argsort(values.to_numpy(dtype="float64"), kind="stable")
        size = max(2, len(values) // 500)
        groups = np.empty(len(values), dtype=np.int64)
        groups[order] = np.arange(len(values)) // size
        return groups
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    if len(uniques) > MAX_GROUP_SHARE * len(values):
        return None
    return codes.astype(np.int64)


def _classification_leak(values: pd.Series, labels: pd.Series) -> str | None:
    keep = values.notna().to_numpy()
    if keep.sum() < MIN_ROWS:
        return None
    label_codes, classes = pd.factorize(labels[keep])
    majority = np.bincount(label_codes).max() / len(label_codes)
    if len(classes) < 2 or majority >= 1.0:
        return None
    groups = _groups(values[keep])
    if groups is None:
        return None
    purity = _purity(groups, label_codes, len(classes))
    if 1 - purity > LEAK_ERROR_SHARE * (1 - majority):
        return None
    return (
        f"guessing the class from it alone is right for {purity:.1%} of rows, against "
        f"{majority:.1%} for the most common class"
    )


def _regression_leak(values: pd.Series, target: pd.Series) -> str | None:
    keep = (values.notna() & target.notna()).to_numpy()
    if keep.sum() < MIN_ROWS:
        return None
    x, y = values[keep], target[keep].astype("float64")
    if is_numeric_series(x):
        correlation = x.rank().corr(y.rank())
        if pd.isna(correlation) or abs(correlation) < LEAK_CORRELATION:
            return None
        return f"its rank correlation with the target is {correlation:+.3f}"
    groups = _groups(x)
    if groups is None or y.var() == 0:
        return None
    means = y.groupby(groups).transform("mean")
    explained = 1 - float(((y - means) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    if explained < LEAK_CORRELATION:
        return None
    return f"its values explain {explained:.1%} of the target's variance"


def leak_warnings(
    frame: pd.DataFrame, features: list[str], target: str, task: str
) -> list[dict[str, str]]:
    sample = _sample(frame)
    sample = sample[sample[target].notna()]
    # Each distinct row once: sorted neighbours that are copies of one row share its label,
    # which would make any continuous feature of a file with doubled rows look like a leak.
    sample = sample.drop_duplicates(subset=[*dict.fromkeys([*features, target])])
    if len(sample) < MIN_ROWS:
        return []
    found = []
    for name in features:
        if name not in sample.columns:
            continue
        if task == "regression":
            detail = _regression_leak(sample[name], sample[target])
        else:
            detail = _classification_leak(sample[name], sample[target])
        if detail:
            found.append(
                warning(
                    name,
                    "leak",
                    f"column {name!r} alone predicts the target almost perfectly ({detail}, on "
                    f"{len(sample)} rows): is it a copy or a consequence of the target, unknown "
                    "when a prediction is made? Then list it in data.drop.",
                )
            )
    return found


def duplicate_warnings(
    frame: pd.DataFrame, features: list[str], target: str
) -> list[dict[str, str]]:
    """Rows that repeat another row in every feature and the target, when there are many and
    chance cannot explain them: some column tells most distinct rows apart (a measurement, an
    amount). Data of a few categories repeats its rows naturally and gets no warning."""
    columns = [name for name in dict.fromkeys([*features, target]) if name in frame.columns]
    if len(frame) < MIN_ROWS or not columns:
        return []
    copies = pd.util.hash_pandas_object(frame[columns], index=False).duplicated().to_numpy()
    repeated = int(copies.sum())
    if repeated < DUPLICATE_SHARE * len(frame):
        return []
    distinct = _sample(frame.loc[~copies, columns])
    if not any(distinct[name].nunique() >= 0.5 * len(distinct) for name in columns):
        return []
    return [
        warning(
            "(rows)",
            "duplicate_rows",
            f"{repeated} of the {len(frame)} rows ({repeated / len(frame):.0%}) repeat another "
            "row exactly (every feature and the target): if an export or a join doubled them, "
            "remove the copies from the source. Copies weigh their row more in training, and "
            "copies on both sides of the split (split.key, time or random) score the model on "
            "rows it trained on.",
        )
    ]


# --------------------------------------------------------------------------------------------
# Number formats
# --------------------------------------------------------------------------------------------
def _text_format_hint(name: str, values: pd.Series, data: DataParams) -> str | None:
    sample = values.dropna().astype(str).str.strip()
    sample = sample[sample != ""].drop_duplicates().head(1000)
    if len(sample) < 5:
        return None
    share = lambda pattern: float(sample.str.match(pattern).mean())  # noqa: E731
    example = lambda pattern: sample[sample.str.match(pattern)].iloc[0]  # noqa: E731
    if data.csv_decimal != "," and share(DECIMAL_COMMA) >= 0.9:
        thousands = " and data.csv_thousands: '.'" if share(THOUSANDS["."]) > 0 else ""
        return (
            f"column {name!r} is text, but its values look like numbers written with a decimal "
            f"comma (e.g. {example(DECIMAL_COMMA)!r}): set data.csv_decimal: ','{thousands} in "
            "params.yaml (a file with decimal commas is usually ';'-separated: "
            "data.csv_separator)."
        )
    for mark, pattern in THOUSANDS.items():
        if mark == data.csv_decimal or mark == data.csv_thousands:
            continue
        marked = sample.str.match(pattern)
        if marked.mean() >= 0.1 and (marked | sample.str.match(PLAIN_INTEGER)).mean() >= 0.95:
            decimal = " and data.csv_decimal: ','" if mark == "." else ""
            return (
                f"column {name!r} is text, but its values look like numbers with {mark!r} "
                f"between thousands (e.g. {sample[marked].iloc[0]!r}): set data.csv_thousands: "
                f"{mark!r}{decimal} in params.yaml."
            )
    numbers = parse_numbers(sample, data).notna()
    if 0.9 <= numbers.mean() < 1:
        bad = ", ".join(repr(value) for value in sample[~numbers].head(3))
        return (
            f"column {name!r} is text only because a few of its values are not numbers "
            f"({bad}; {numbers.mean():.0%} of the distinct values are): fix or empty those "
            f"cells, or list {name!r} in data.numeric, which makes ingest name each one."
        )
    return None


def _decimal_hint(name: str, values: pd.Series, data: DataParams) -> str | None:
    """A numeric column whose values all have three decimals or none (3.504, 970) is what a
    file with '.' between thousands looks like when read with '.' as the decimal mark."""
    if data.csv_thousands is not None or data.csv_decimal != ".":
        return None
    numbers = values.dropna().to_numpy(dtype="float64")[:5000]
    if len(numbers) < MIN_ROWS:
        return None
    thousandths = np.round(numbers * 1000)
    if not np.allclose(numbers * 1000, thousandths, rtol=0, atol=1e-6):
        return None
    fractional = thousandths % 1000 != 0
    three = fractional & (thousandths % 10 != 0)
    magnitude = np.abs(numbers[fractional])
    if three.mean() < 0.5 or not ((magnitude >= 1) & (magnitude < 1000)).all():
        return None
    example = numbers[three][0]
    return (
        f"column {name!r}: every value has three decimals or none (e.g. {example:.3f}). If "
        f"'.' separates thousands in this file ({example:.3f} meaning {example * 1000:.0f}), "
        "set data.csv_thousands: '.' and data.csv_decimal: ',' in params.yaml."
    )


def number_format_warnings(
    frame: pd.DataFrame, columns: list[str], data: DataParams
) -> list[dict[str, str]]:
    """Hints for CSV sources only: Parquet and bundled data carry their own types."""
    if data.is_builtin or (data.format != "csv" and not data.source.lower().endswith(".csv")):
        return []
    sample = _sample(frame)
    found = []
    for name in columns:
        if name not in sample.columns or name in data.categorical:
            continue
        values = sample[name]
        if is_numeric_series(values):
            hint = _decimal_hint(name, values, data)
        else:
            hint = _text_format_hint(name, as_text(values), data)
        if hint:
            found.append(warning(name, "number_format", hint))
    return found


def data_warnings(
    frame: pd.DataFrame, features: list[str], target: str, task: str, data: DataParams
) -> list[dict[str, Any]]:
    """Every warning about a batch that passed validation."""
    return [
        *number_format_warnings(frame, [*features, target], data),
        *identifier_warnings(frame, features),
        *constant_warnings(frame, features),
        *date_warnings(frame, features, data),
        *leak_warnings(frame, features, target, task),
        *duplicate_warnings(frame, features, target),
    ]
