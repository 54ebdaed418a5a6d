"""Split the validated batch into train and holdout sets, keeping every row on its side as the
data grows.

`split.method` in params.yaml:

- `hash` (default): a row is held out when a hash of its key falls below `test_size`. The key
  is `split.key` (an id column) or, without one, the row's contents: every column of the source
  but the target, the columns in `data.drop` included, so dropping a column leaves every row on
  its side. Identical rows are told apart by their occurrence, the k-th copy of a row (in file
  order) hashing with k, so copies spread over both sides in the `test_size` share. The decision
  depends on the row and the copies before it, so appended rows never move old ones, and a
  larger `test_size` only adds rows to the holdout. With `stratify`, a class whose rows all fell
  on one side gets one row moved across (recorded in the definition).
- `time`: the latest `test_size` share of rows by `split.time_column` is the holdout; as newer
  rows arrive the boundary moves forward and older holdout rows join training.
- `group`: a hash of `split.group_column` decides for a whole group: no group on both sides.
- `random`: a random draw over the whole batch (stratified by class with `stratify`), redrawn
  whenever the rows change.

The split definition (method, key, test_size, seed, fingerprint) is written to
`paths.split_report`, with a warning when the holdout's share is far from `test_size` (a key
with few distinct values, a few large groups, many rows at the boundary time).
`holdout_under` applies a recorded definition to any frame, which tells which rows a model
trained under that definition never saw; the occurrence of a copy is counted in the frame given.

Both sides keep the columns of `data.drop` (read back from the source: ingest leaves them out,
so validation and the contract never see them). No model sees them either, as train and
evaluate take the contract's features; they are there so that a champion trained while one of
them was a feature can still score the holdout, and so that the holdout file alone holds every
column a recorded row-contents key reads.

Written with numpy and pandas rather than scikit-learn: importing scikit-learn costs several
seconds in a stage that otherwise takes about one, and these rules are a few lines whose
properties the tests pin down.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import sys
from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }}.core.config import Params, SplitParams
from {{ cookiecutter.package_name }}.core.contract import DataContract, load_contract
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.records import (
    SplitDefinition,
    read_frame,
    write_frame,
    write_record,
)
from {{ cookiecutter.package_name }}.core.source import (
    as_text,
    load_source,
    plain_time,
    shown,
)

MIN_ROWS_PER_SIDE = 2
HASH = "splitmix64 over pandas.util.hash_array per key column"
_MISSING = np.uint64(0x5BD1E9955BD1E995)  # the hash of a missing value
_MASK64 = (1 << 64) - 1
_OCCURRENCE = np.uint64(0xD6E8FEB86659FD93)  # mixed with a copy's occurrence index
# A holdout share outside [test_size / 2, test_size * 3 / 2], or further from test_size than
# chance over the key's values explains (this many binomial standard deviations, the key's
# values weighted by their rows), is warned about.
SHARE_BAND = (0.5, 1.5)
SHARE_SIGMAS = 4.0
# The fields that define the rule; equal fingerprints mean the same rows are held out. The time
# cutoff and the rows moved across for stratification are part of it: a time split whose
# cutoff moved holds out other rows, even with the same settings.
RULE_FIELDS = (
    "method",
    "key",
    "row_contents",
    "occurrence",
    "test_size",
    "seed",
    "stratify",
    "hash",
    "time_cutoff",
    "forced",
)


# --------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------
def _splitmix64(values: np.ndarray) -> np.ndarray:
    """A fast, well-mixed 64-bit hash step (Steele et al.); numpy's uint64 arithmetic wraps."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _column_hashes(values: pd.Series, kind: str) -> np.ndarray:
    """One uint64 per row from a key column's values, read one way whatever the batch's dtypes
    (an integer or a float column, one text type or another), so a row's hash depends on its
    values only. Text is hashed once per distinct value (siphash, pandas.util.hash_array)."""
    if kind == "numeric":
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        return pd.util.hash_array(numbers + 0.0)  # -0.0 and 0.0 hash alike
    codes, uniques = pd.factorize(as_text(values))
    distinct = pd.util.hash_array(np.asarray(uniques, dtype=object).astype(str).astype(object))
    return np.append(distinct, _MISSING)[codes]  # code -1 (missing) takes the last entry


def row_hashes(frame: pd.DataFrame, kinds: dict[str, str], seed: int) -> np.ndarray:
    """One uint64 per row from the key columns' values (in the key's order) and the seed."""
    combined = np.full(len(frame), _splitmix64(np.array([seed & _MASK64], np.uint64))[0])
    for name, kind in kinds.items():
        combined = _splitmix64(combined ^ _column_hashes(frame[name], kind))
    return combined


def occurrences(hashes: np.ndarray) -> np.ndarray:
    """For each row, how many earlier rows (in the frame's order) have the same key hash: 0 for
    the first copy of a key, 1 for the second, ... Computed on whatever frame is given, so a row
    appended later never changes the count of an earlier one."""
    order = np.argsort(hashes, kind="stable")  # stable: equal keys stay in file order
    ranked = hashes[order]
    positions = np.arange(len(hashes))
    starts = np.ones(len(hashes), dtype=bool)
    starts[1:] = ranked[1:] != ranked[:-1]
    first = np.maximum.accumulate(np.where(starts, positions, 0))
    counts = np.empty(len(hashes), dtype=np.uint64)
    counts[order] = (positions - first).astype(np.uint64)
    return counts


def key_hashes(frame: pd.DataFrame, definition: dict[str, Any]) -> np.ndarray:
    """The hash that decides each row's side under a split definition: the key columns' hash,
    mixed with the row's occurrence among identical keys when the definition says so."""
    hashes = row_hashes(frame, definition["key"], definition["seed"])
    if definition.get("occurrence"):
        hashes = _splitmix64(hashes ^ _splitmix64(occurrences(hashes) ^ _OCCURRENCE))
    return hashes


def content_key(frame: pd.DataFrame, target: str) -> dict[str, str]:
    """The key of a hash split without `split.key`: every column but the target, read by its
    values' type (numbers as numbers, anything else as text) rather than by the contract, so a
    column keeps its hash when it is dropped from the features."""
    return {
        name: "numeric"
        if pd.api.types.is_numeric_dtype(frame[name].dtype)
        and not pd.api.types.is_bool_dtype(frame[name].dtype)
        else "categorical"
        for name in sorted(map(str, frame.columns))
        if name != target
    }


def _threshold(test_size: float) -> np.uint64:
    return np.uint64(min(int(test_size * 2**64), _MASK64))


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------
def time_values(series: pd.Series) -> pd.Series:
    """Numbers (a year, an epoch) as float64; text as UTC timestamps (ISO 8601, else the
    format of the first value); NaN/NaT where a value is not a time."""
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("float64")
    text = as_text(series)
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    if (parsed.isna() & text.notna()).any():
        fallback = pd.to_datetime(text, utc=True, errors="coerce")
        if fallback.isna().sum() < parsed.isna().sum():
            parsed = fallback
    return parsed


def _time_order(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return (
            values.dt.tz_convert("UTC")
            .dt.tz_localize(None)
            .to_numpy("datetime64[ns]")
            .view("int64")
            .astype("float64")
        )
    return values.to_numpy(dtype="float64")


def _time_label(values: pd.Series, order: float) -> str | float:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return pd.Timestamp(int(order), tz="UTC").isoformat()
    return float(order)


def _cutoff_order(cutoff: str | float) -> float:
    if isinstance(cutoff, str):
        return float(pd.Timestamp(cutoff).tz_convert("UTC").value)
    return float(cutoff)


# --------------------------------------------------------------------------------------------
# The rules
# --------------------------------------------------------------------------------------------
def holdout_mask(labels: pd.Series | None, n_rows: int, test_size: float, seed: int) -> np.ndarray:
    """`random`: boolean mask of holdout rows; with labels, each class keeps its share on both
    sides."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(n_rows, dtype=bool)
    groups = (
        [np.arange(n_rows)]
        if labels is None
        else [np.flatnonzero(labels.to_numpy() == value) for value in pd.unique(labels)]
    )
    for rows in groups:
        n_test = round(len(rows) * test_size)
        if labels is not None and len(rows) >= 2:
            n_test = min(max(n_test, 1), len(rows) - 1)  # every class on both sides
        mask[rng.permutation(rows)[:n_test]] = True
    return mask


def _force_both_sides(
    hashes: np.ndarray, mask: np.ndarray, labels: pd.Series
) -> dict[str, list[str]]:
    """Move one row of each class that fell entirely on one side (the row nearest the
    threshold) across; returns the moved rows' hashes so the rule can be re-applied."""
    forced: dict[str, list[str]] = {"holdout": [], "train": []}
    codes, _ = pd.factorize(labels)
    for code in range(codes.max() + 1 if len(codes) else 0):
        rows = np.flatnonzero(codes == code)
        if len(rows) < 2:
            continue
        if not mask[rows].any():
            row = rows[np.argmin(hashes[rows])]
            mask[row] = True
            forced["holdout"].append(f"{int(hashes[row]):016x}")
        elif mask[rows].all():
            row = rows[np.argmax(hashes[rows])]
            mask[row] = False
            forced["train"].append(f"{int(hashes[row]):016x}")
    return forced


def _apply_forced(hashes: np.ndarray, mask: np.ndarray, forced: dict[str, list[str]]) -> None:
    for side, value in (("holdout", True), ("train", False)):
        if forced.get(side):
            moved = np.array([int(text, 16) for text in forced[side]], dtype=np.uint64)
            mask[np.isin(hashes, moved)] = value


def setting_problems(split: SplitParams, columns: list[str], where: str) -> list[str]:
    """One line per split setting (key, time_column, group_column) that names a column not
    among `columns` (those of `where`: the data, or schema.yaml), with close matches."""
    named: list[tuple[str, str | None]] = [("split.key", name) for name in split.key or []]
    named += [("split.time_column", split.time_column), ("split.group_column", split.group_column)]
    problems = []
    for setting, name in named:
        if name is None or name in columns:
            continue
        close = [column for column in columns if column.lower() == name.lower()][:1]
        close = list(dict.fromkeys(close + difflib.get_close_matches(name, columns, n=3)))[:3]
        guess = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        listed = ", ".join(columns[:30]) + (", ..." if len(columns) > 30 else "")
        problems.append(
            f"{setting} names column {name!r}, which {where} does not have{guess}; its "
            f"columns are: {listed}. Fix {setting} in params.yaml."
        )
    return problems


def _key(params: Params, contract: DataContract) -> tuple[dict[str, str], bool]:
    """The columns whose values decide a row's side, with the kind they are read as, and
    whether they are the row's contents (every feature) rather than named columns."""
    split = params.split
    named = {"hash": split.key, "time": [split.time_column], "group": [split.group_column]}
    columns = named.get(split.method)
    problems = setting_problems(split, list(contract.columns), str(params.paths.schema_file))
    if problems:
        raise PipelineError(f"{problems[0]} Then run the pipeline again: uv run dvc repro.")
    if columns:
        return {name: contract.columns[name].kind for name in columns if name}, False
    if split.method == "hash":  # the row's contents: _assign sets the key from the batch
        return {name: rule.kind for name, rule in sorted(contract.features.items())}, True
    return {}, False


def _fingerprint(definition: dict[str, Any]) -> str:
    rule = {field: definition[field] for field in RULE_FIELDS}
    return hashlib.sha256(json.dumps(rule, sort_keys=True).encode()).hexdigest()


def split_definition(params: Params, contract: DataContract) -> dict[str, Any]:
    """The split rule as params.yaml and the contract define it (no data needed)."""
    kinds, contents = _key(params, contract)
    split = params.split
    definition: dict[str, Any] = {
        "method": split.method,
        "key": kinds,
        "row_contents": contents,
        "occurrence": contents,
        "test_size": split.test_size,
        "seed": split.seed,
        "stratify": split.stratify and params.is_classification,
        "hash": HASH if split.method in ("hash", "group") else None,
        "time_cutoff": None,
        "forced": {"holdout": [], "train": []},
        "stable": split.method != "random",
    }
    definition["fingerprint"] = _fingerprint(definition)
    return definition


def holdout_under(frame: pd.DataFrame, definition: dict[str, Any]) -> np.ndarray | None:
    """Which rows of `frame` a recorded split definition puts in the holdout: the rows a model
    trained under it never saw. None for `random`, whose draw depends on the whole batch."""
    method = definition["method"]
    if method == "random":
        return None
    kinds = definition["key"]
    if method == "time":
        (column,) = kinds
        return _time_order(time_values(frame[column])) > _cutoff_order(definition["time_cutoff"])
    hashes = key_hashes(frame, definition)
    mask = hashes < _threshold(definition["test_size"])
    _apply_forced(hashes, mask, definition.get("forced", {}))
    return mask


def assign(
    frame: pd.DataFrame, params: Params, contract: DataContract
) -> tuple[np.ndarray, dict[str, Any]]:
    """The holdout mask for this batch and the full split definition."""
    mask, definition = _assign(frame, params, contract)
    definition["fingerprint"] = _fingerprint(definition)  # with the cutoff and forced rows
    return mask, definition


def _assign(
    frame: pd.DataFrame, params: Params, contract: DataContract
) -> tuple[np.ndarray, dict[str, Any]]:
    definition = split_definition(params, contract)
    split, target = params.split, params.data.target
    labels = frame[target] if params.is_classification else None
    if split.method == "random":
        stratified = labels if definition["stratify"] else None
        return holdout_mask(stratified, len(frame), split.test_size, split.seed), definition
    if split.method == "time":
        (column,) = definition["key"]
        values = time_values(frame[column])
        order = _time_order(values)
        n_train = len(frame) - round(len(frame) * split.test_size)
        cutoff = float(np.sort(order)[max(n_train, 1) - 1])
        definition["time_cutoff"] = _time_label(values, cutoff)
        return order > cutoff, definition
    if definition["row_contents"]:
        definition["key"] = content_key(frame, target)
    hashes = key_hashes(frame, definition)
    mask = hashes < _threshold(split.test_size)
    if split.method == "hash" and definition["stratify"] and labels is not None:
        definition["forced"] = _force_both_sides(hashes, mask, labels)
    return mask, definition


def _check_sides(
    frame: pd.DataFrame, mask: np.ndarray, params: Params, definition: dict[str, Any]
) -> None:
    """Each side big enough, and every class on both sides: train and evaluate fail otherwise,
    and a failing train or evaluate would delete the last good models and metrics."""
    split = params.split
    n_test, n_train = int(mask.sum()), int((~mask).sum())
    cutoff = definition["time_cutoff"]
    cutoff = plain_time(cutoff) if isinstance(cutoff, str) else shown(cutoff)  # 2021, not 2021.0
    how = {
        "time": f"the rows after {cutoff} in {split.time_column!r}",
        "group": f"whole groups of {split.group_column!r}",
    }.get(split.method, f"split.method {split.method}")
    if min(n_train, n_test) < MIN_ROWS_PER_SIDE:
        raise PipelineError(
            f"split.test_size={split.test_size} leaves {n_train} training and {n_test} holdout "
            f"rows out of {len(frame)} ({how}); each side needs at least {MIN_ROWS_PER_SIDE}. "
            "Change split.test_size, or use split.method: hash."
        )
    if not params.is_classification:
        return
    labels = frame[params.data.target]
    for side, rows in (("holdout", mask), ("training", ~mask)):
        missing = sorted(set(labels.unique()) - set(labels[rows].unique()), key=str)
        if missing:
            raise PipelineError(
                f"no row of class{'es' * (len(missing) > 1)} {', '.join(map(shown, missing))} "
                f"is in the {side} set ({how}): the models could not be trained or scored on "
                "every class. Add rows of that class, or use split.method: hash with "
                "split.stratify: true, which keeps every class on both sides."
            )


def share_warnings(
    frame: pd.DataFrame, mask: np.ndarray, params: Params, definition: dict[str, Any]
) -> list[str]:
    """A warning when the holdout's share of rows is far from `test_size`: outside SHARE_BAND
    times it, or further than chance over the key's values explains (the share's standard
    deviation when each distinct key value falls on a side at random, weighted by its rows)."""
    split, n_rows, n_test = params.split, len(frame), int(mask.sum())
    if split.method == "random" or not n_rows:
        return []
    share, size = n_test / n_rows, split.test_size
    if definition["occurrence"]:
        counts = np.ones(n_rows)  # every copy of a row has its own key
    else:
        hashes = row_hashes(frame, definition["key"], split.seed)
        counts = np.unique(hashes, return_counts=True)[1].astype("float64")
    weights = counts / n_rows
    sigma = (size * (1 - size) * float((weights**2).sum())) ** 0.5
    low, high = SHARE_BAND
    if low * size <= share <= high * size and abs(share - size) <= SHARE_SIGMAS * sigma:
        return []
    distinct = len(counts)
    largest = f"the largest holds {weights.max():.0%} of the rows"
    columns = ", ".join(map(repr, definition["key"]))
    if definition["row_contents"]:
        why = (
            f"each of the {n_rows} rows is drawn on its own and chance moved the share this far "
            "(small data). The metrics' intervals carry that uncertainty; with more rows the "
            "share comes closer."
        )
    elif split.method == "group":
        why = (
            f"{split.group_column!r} has {distinct} groups ({largest}) and each goes whole to "
            "one side. Use split.method: hash if the rows of one group may sit on both sides."
        )
    elif split.method == "time":
        why = (
            f"{split.time_column!r} has {distinct} distinct values ({largest}) and the rows at "
            "the boundary time all go to training. Use a finer time column or another "
            "split.test_size."
        )
    else:
        why = (
            f"split.key {columns} has {distinct} distinct values ({largest}) and the rows of "
            "one value share a side. Name a column that is unique per row (an id) in "
            "split.key, or use split.method: group if the rows of one value must stay together."
        )
    return [
        f"the holdout is {n_test} of {n_rows} rows ({share:.1%}), far from "
        f"split.test_size={size}: {why}"
    ]


def split_frame(
    frame: pd.DataFrame, params: Params, contract: DataContract
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Train and holdout frames and the split definition. `frame` may hold the columns in
    data.drop (the row-contents key reads them), and the two sides keep them: they are never a
    feature (train and evaluate take the contract's), but a registered model trained while
    one was can still score the holdout (the gate's champion comparison)."""
    mask, definition = assign(frame, params, contract)
    _check_sides(frame, mask, params, definition)
    definition["warnings"] = share_warnings(frame, mask, params, definition)
    train, test = frame[~mask], frame[mask]
    definition["rows"] = {"train": len(train), "holdout": len(test)}
    if params.is_classification:
        target = params.data.target
        definition["classes"] = {
            side: {str(label): int(count) for label, count in part[target].value_counts().items()}
            for side, part in (("train", train), ("holdout", test))
        }
    return train.reset_index(drop=True), test.reset_index(drop=True), definition


def with_dropped_columns(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The raw batch with the columns of data.drop read back from the source. Ingest leaves
    them out of the raw batch, so validation and the contract never see them; the split needs
    them for the row-contents key (hash without split.key: a key without them would redraw the
    split whenever a column is dropped), and writes them to both sides, so that a champion
    trained while one was a feature can still be scored on the holdout."""
    drop = params.data.drop
    if not drop:
        return frame
    source = load_source(params.data.model_copy(update={"drop": []})).frame
    if len(source) != len(frame) or not source.index.equals(frame.index):
        raise PipelineError(
            f"data.source {params.data.source!r} changed since the ingest stage read it: run "
            "the pipeline again (uv run dvc repro)."
        )
    return pd.concat([frame, source[list(drop)]], axis=1)


def run_split(params: Params) -> dict[str, Any]:
    """Stage `split`: paths.raw -> paths.train, paths.test and the split definition
    (paths.split_report); runs only after validation passed."""
    frame = with_dropped_columns(read_frame(params.paths.raw), params)
    contract = load_contract(params.paths.schema_file)
    train, test, definition = split_frame(frame, params, contract)
    for warning in definition["warnings"]:
        print(f"split: warning: {warning}", file=sys.stderr)
    write_frame(train, params.paths.train)
    write_frame(test, params.paths.test)
    write_record(SplitDefinition.model_validate(definition), params.paths.split_report)
    return {"method": definition["method"], "train_rows": len(train), "test_rows": len(test)}
