"""Stage `validate`: check a batch against the data contract, then report what deserves a look.

pandera enforces the contract's rules (declared bounds, allowed values, missing values, row
count). A
few checks run before it, vectorised here, because pandera reports them poorly or a later stage
would fail on data that meets every rule:

- a text value in a numeric column: pandera prints a coercion failure, then a TypeError for each
  comparison, and counts real missing values as failures; here it is one line per column with
  the offending values and their lines;
- infinite values, which a fresh contract would accept (min: -.inf) and training would not;
- a classification target with a single class, a class too rare for both sides of the split, or
  more than two classes for a binary task;
- a missing column, named with its fix instead of pandera's `column_in_dataframe`;
- a feature with no value in any row (nothing to learn, and its rules would be guesses);
- in a column inferred from this batch, numbers and text mixed (a numeric column with stray
  text would silently become a category): params.yaml must say which it is;
- a split setting naming a column the data does not have (checked before anything is written).

A batch with any problem stops the pipeline with one line per problem, before anything is
trained or overwritten. A batch that passes may still carry warnings (data_warnings.py, unseen
categories, values outside a column's observed range, ignored columns, dropped rows): they go to
the console and to the report. The observed ranges then widen to cover the batch.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd
import yaml

from {{ cookiecutter.package_name }}.core.config import DataParams, Params
from {{ cookiecutter.package_name }}.core.contract import (
    ColumnRule,
    DataContract,
    contract_for,
    infer_column,
    to_pandera,
    widen_observed,
)
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.records import (
    DroppedRows,
    IngestReport,
    ValidationReport,
    read_frame,
    read_record,
    write_record,
    write_text,
)
from {{ cookiecutter.package_name }}.core.source import (
    RowNumbers,
    as_text,
    is_numeric_series,
    not_numbers_message,
    parse_numbers,
    present,
    shown,
)
from {{ cookiecutter.package_name }}.pipeline.data_warnings import (
    DECIMAL_COMMA,
    THOUSANDS,
    data_warnings,
    warning,
)
from {{ cookiecutter.package_name }}.pipeline.split import setting_problems, time_values

MIN_ROWS_PER_CLASS = 2
DONE_NOTHING = "Nothing after validation ran, so earlier models and metrics are unchanged."


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _examples(values: pd.Series, rows: RowNumbers, limit: int, with_values: bool = True) -> str:
    head = values.head(limit)
    if with_values:
        text = ", ".join(f"{shown(value)} ({rows.label(index)})" for index, value in head.items())
    else:
        text = ", ".join(rows.label(index) for index in head.index)
    return text + (", ..." if len(values) > limit else "")


# --------------------------------------------------------------------------------------------
# Checks before the rules
# --------------------------------------------------------------------------------------------
def structure_problems(frame: pd.DataFrame, contract: DataContract) -> list[str]:
    problems = [
        f"column {name!r} is in schema.yaml but not in the data: restore it, or, if it is gone "
        "for good, delete its entry from schema.yaml."
        for name in contract.columns
        if name not in frame.columns
    ]
    if not contract.features:
        problems.append(
            "no feature columns: every column but the target is dropped (data.drop) or read by "
            "the split (split.key, split.time_column, split.group_column)."
        )
    return problems


def _text_target_message(
    name: str, values: pd.Series, bad: pd.Series, rows: RowNumbers, limit: int
) -> str:
    count, total = int(bad.sum()), int(present(values).sum())
    return (
        f"target {name!r} holds text, but task: regression needs a number in every row: "
        f"{count} of its {total} values {'is' if count == 1 else 'are'} not a number: "
        f"{_examples(values[bad], rows, limit)}. Check data.target (is {name!r} the column to "
        "predict?), task (text labels are classes: binary_classification or multiclass) and "
        "data.csv_decimal / data.csv_thousands (numbers written 3,5 or 1.234) in params.yaml."
    )


def number_problems(
    frame: pd.DataFrame, contract: DataContract, rows: RowNumbers, limit: int, task: str = ""
) -> tuple[list[str], pd.DataFrame, dict[str, pd.Index]]:
    """Text and infinite values in numeric columns; returns the batch with those columns as
    float64 (what pandera then checks) and, per column, the rows already reported as not
    numbers (their NaN is not a missing value to report again)."""
    problems = []
    reported: dict[str, pd.Index] = {}
    checked = frame.copy(deep=False)
    for name, rule in contract.columns.items():
        if rule.kind != "numeric" or name not in frame.columns:
            continue
        values = frame[name]
        if not is_numeric_series(values):
            numbers = pd.to_numeric(as_text(values), errors="coerce").astype("float64")
            bad = numbers.isna() & present(values)
            if bad.any():
                reported[name] = values.index[bad.to_numpy()]
                if name == contract.target and task == "regression":
                    problems.append(_text_target_message(name, values, bad, rows, limit))
                else:
                    problems.append(
                        not_numbers_message(
                            name, values, bad, rows, "is numeric in schema.yaml (dtype float64)"
                        )
                    )
            values = numbers
        values = values.astype("float64")
        infinite = np.isinf(values.to_numpy())
        if infinite.any():
            problems.append(
                f"column {name!r} has {_plural(int(infinite.sum()), 'infinite value')}: "
                f"{_examples(values[infinite], rows, limit)}. Replace them with a number, or "
                "empty those cells (missing values are allowed)."
            )
            values = values.where(~infinite)  # reported once, not again as out of bounds
        checked[name] = values
    return problems, checked, reported


def empty_problems(frame: pd.DataFrame, contract: DataContract) -> list[str]:
    """A feature with no value in any row: nothing to learn from, and a rule inferred from
    it (any kind, any value) would be a guess that later batches are held to."""
    return [
        f"column {name!r} has no value in any of the {_plural(len(frame), 'row')}: a model "
        f"learns nothing from it. List it in data.drop in params.yaml (data.drop: [{name}]), "
        "or fill it in."
        for name in contract.features
        if name in frame.columns and not _has_value(frame[name])
    ]


def _has_value(values: pd.Series) -> bool:
    """Whether any cell holds a value, judged on the distinct values (cheap on any size)."""
    filled = values.dropna()
    if filled.empty:
        return False
    return bool(present(pd.Series(pd.unique(filled.head(1000)))).any()) or bool(
        present(pd.Series(pd.unique(filled))).any()
    )


def _mixed_fix(name: str, text: pd.Series) -> str:
    """The setting that explains text among numbers, when the text looks like numbers."""
    sample = text.drop_duplicates().head(1000).astype(str).str.strip()
    if sample.str.match(DECIMAL_COMMA).mean() >= 0.9:
        return (
            "They look like numbers written with a decimal comma: set data.csv_decimal: ',' "
            "in params.yaml (such files are usually ';'-separated: data.csv_separator)."
        )
    for mark, pattern in THOUSANDS.items():
        if sample.str.match(pattern).mean() >= 0.9:
            return (
                f"They look like numbers with {mark!r} between thousands: set "
                f"data.csv_thousands: {mark!r} in params.yaml."
            )
    return (
        f"Say which it is in params.yaml: data.numeric: [{name}] if it is a number (ingest "
        f"then names each value that is not, to fix or empty), or data.categorical: [{name}] "
        "if it is a category (every value a label)."
    )


def mixed_problems(
    frame: pd.DataFrame,
    contract: DataContract,
    inferred: tuple[str, ...],
    data: DataParams,
    rows: RowNumbers,
    limit: int,
) -> list[str]:
    """Columns inferred from this batch as categorical whose values are mostly numbers and
    partly text: a numeric column with stray text ('unknown', '12 kg') would silently train as
    a category with one level per number. Numbers are read with the file's decimal and
    thousands marks; a text column with a few numbers in it (sizes S, M, 38) is left alone."""
    problems = []
    for name in inferred:
        rule = contract.features.get(name)
        if rule is None or rule.kind != "categorical" or name in data.categorical:
            continue
        if name not in frame.columns or is_numeric_series(frame[name]):
            continue
        # Judged on the distinct values, then counted per row: one pass over a large column.
        codes, uniques = pd.factorize(as_text(frame[name]))
        distinct = pd.Series(uniques, dtype="string")
        kept = present(distinct).to_numpy()
        is_number = parse_numbers(distinct, data).notna().to_numpy()
        rows_kept = codes >= 0
        rows_kept[rows_kept] = kept[codes[rows_kept]]
        values, number = frame[name][rows_kept], is_number[codes[rows_kept]]
        numbers, texts = int(number.sum()), int((~number).sum())
        if not texts or numbers < texts:
            continue
        number_examples = ", ".join(map(repr, pd.unique(values[number].astype(str))[:3]))
        text = values[~number]
        problems.append(
            f"column {name!r} mixes numbers and text: {numbers} of its {len(values)} values "
            f"are numbers (e.g. {number_examples}) and {texts} are not: "
            f"{_examples(text, rows, limit)}. {_mixed_fix(name, text)}"
        )
    return problems


def class_problems(frame: pd.DataFrame, contract: DataContract, task: str) -> list[str]:
    """What the split and the models need from a classification target."""
    target = contract.target
    if task == "regression" or target not in frame.columns:
        return []
    counts = frame[target].value_counts()
    if len(counts) < 2:
        only = ", ".join(map(shown, counts.index)) or "none"
        return [
            f"target {target!r} has a single class in this batch ({only}): a classifier needs "
            "at least two. Check data.target in params.yaml and that the file is not filtered "
            "to one class."
        ]
    problems = []
    if task == "binary_classification" and len(counts) > 2:
        problems.append(
            f"target {target!r} has {len(counts)} classes "
            f"({', '.join(map(shown, counts.index[:10]))}) but task is binary_classification: "
            "set task: multiclass in params.yaml, or map the classes to two in your data."
        )
    allowed = contract.columns[target].allowed
    known = counts.index.isin(allowed) if allowed is not None else True  # others fail `allowed`
    rare = counts[(counts < MIN_ROWS_PER_CLASS) & known]
    if len(rare):
        listed = ", ".join(f"{shown(label)} ({count})" for label, count in rare.items())
        problems.append(
            f"target {target!r}: class{'es' * (len(rare) > 1)} {listed} "
            f"{'has' if len(rare) == 1 else 'have'} fewer than {MIN_ROWS_PER_CLASS} rows; each "
            "class needs rows on both sides of the split. Add rows of it, or remove them from "
            "the data."
        )
    return problems


def time_problems(
    frame: pd.DataFrame, column: str | None, rows: RowNumbers, limit: int
) -> list[str]:
    """split.time_column must hold a time (or a number such as a year) in every row."""
    if column is None or column not in frame.columns:
        return []
    values = frame[column]
    bad = time_values(values).isna() & present(values)
    if not bad.any():
        return []
    return [
        f"column {column!r} (split.time_column) has {_plural(int(bad.sum()), 'value')} that "
        f"{'is not a time' if bad.sum() == 1 else 'are not times'}: "
        f"{_examples(values[bad], rows, limit)}. Write times as ISO 8601 (2024-03-31 or "
        "2024-03-31T12:00:00), or use a number such as a year."
    ]


def unseen_categories(frame: pd.DataFrame, contract: DataContract) -> dict[str, dict[str, Any]]:
    """Per categorical feature with known categories: rows with other values, and the counts."""
    found = {}
    for name, rule in contract.features.items():
        if rule.kind != "categorical" or rule.categories is None or name not in frame.columns:
            continue
        values = as_text(frame[name])
        unseen = values.notna() & ~values.isin(rule.categories)
        if unseen.any():
            counts = values[unseen].value_counts()
            found[name] = {
                "rows": int(unseen.sum()),
                "values": {str(value): int(count) for value, count in counts.head(20).items()},
                "first_rows": [int(index) for index in values.index[unseen][:5]],
            }
    return found


def outside_observed(
    frame: pd.DataFrame, contract: DataContract, rows: RowNumbers, limit: int
) -> dict[str, dict[str, Any]]:
    """Per numeric feature, the values outside its observed range in schema.yaml: counted and
    quoted, never refused (the range is a fact about earlier data, not a rule)."""
    found = {}
    for name, rule in contract.features.items():
        if rule.kind != "numeric" or rule.observed is None or name not in frame.columns:
            continue
        numbers = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        numbers = numbers.where(np.isfinite(numbers))
        below, above = numbers < rule.observed.min, numbers > rule.observed.max
        if below.any() or above.any():
            outside = numbers[below | above]
            found[name] = {
                "below": int(below.sum()),
                "above": int(above.sum()),
                "observed": [rule.observed.min, rule.observed.max],
                "batch": [float(numbers.min()), float(numbers.max())],
                "examples": _examples(outside, rows, limit),
            }
    return found


def _outside_message(name: str, found: dict[str, Any]) -> str:
    low, high = found["observed"]
    sides = [
        f"{_plural(found[side], 'value')} {side} {shown(bound)}"
        for side, bound in (("below", low), ("above", high))
        if found[side]
    ]
    return (
        f"column {name!r}: {' and '.join(sides)}, outside its observed range "
        f"[{shown(low)}, {shown(high)}] in schema.yaml: {found['examples']}. They are accepted "
        "and the observed range widens to include them (drift measures them). If such values "
        f"are wrong, declare hard bounds (min, max) for {name!r} under validate.bounds in "
        "params.yaml."
    )


def _unseen_message(name: str, found: dict[str, Any], rows: RowNumbers, policy: str) -> str:
    values = ", ".join(f"{value!r} ({count})" for value, count in list(found["values"].items())[:5])
    where = ", ".join(rows.label(index) for index in found["first_rows"][:3])
    other = "warn" if policy == "error" else "error"
    return (
        f"column {name!r}: {_plural(found['rows'], 'row')} with values not among its "
        f"categories in schema.yaml: {values} (first at {where}). If they are valid, add them "
        f"to the column's categories in schema.yaml; validate.unseen_categories: {other} "
        f"makes this {'a warning' if other == 'warn' else 'stop the pipeline'}."
    )


# --------------------------------------------------------------------------------------------
# The rules (pandera)
# --------------------------------------------------------------------------------------------
def _rule_words(check: str, column: str, contract: DataContract) -> tuple[str, str]:
    """What a failed pandera check means, and the fix, in plain words."""
    if check == "not_nullable":
        if column == contract.target:
            fix = (
                "Set data.missing_target: drop in params.yaml to train without these rows, or "
                "fill them in."
            )
        elif contract.columns[column].role == "split":
            fix = "Every row needs a value in a column the split reads."
        else:
            fix = "Fill them in, or set nullable: true for it in schema.yaml."
        return "missing", fix
    if check.startswith("greater_than_or_equal_to"):
        return f"below its min, a declared bound (rule {check})", (
            f"Fix the data, or lower validate.bounds.{column}.min in params.yaml if the values "
            "are right."
        )
    if check.startswith("less_than_or_equal_to"):
        return f"above its max, a declared bound (rule {check})", (
            f"Fix the data, or raise validate.bounds.{column}.max in params.yaml if the values "
            "are right."
        )
    if check.startswith("isin"):
        return f"not allowed in schema.yaml (rule {check})", (
            "If they are valid, add them to allowed in schema.yaml."
        )
    return f"failing rule {check}", "Fix the data, or the rule in schema.yaml if it is wrong."


def rule_problems(
    frame: pd.DataFrame,
    contract: DataContract,
    rows: RowNumbers,
    limit: int,
    reported: dict[str, pd.Index] | None = None,
) -> list[str]:
    import pandera.errors

    present_columns = [name for name in contract.columns if name in frame.columns]
    try:
        # inplace: `frame` is this module's own copy; pandera would otherwise copy 2 M rows again.
        to_pandera(contract, present_columns).validate(frame, lazy=True, inplace=True)
    except pandera.errors.SchemaErrors as error:
        failures = error.failure_cases
    else:
        return []
    problems = []
    for (column, check), group in failures.groupby(["column", "check"], sort=False, dropna=False):
        count = len(group)
        if pd.isna(column) or column not in contract.columns:
            problems.append(
                f"the batch has {_plural(len(frame), 'row')}; schema.yaml asks for at least "
                f"{contract.min_rows} (min_rows)."
                if check.startswith("at least")
                else f"rule {check} failed: {group['failure_case'].head(limit).tolist()}"
            )
            continue
        if check == "not_nullable" and reported and column in reported:
            # Cells that were text are already reported as not numbers, not as missing.
            group = group[~group["index"].isin(reported[column])]
            if group.empty:
                continue
            count = len(group)
        words, fix = _rule_words(str(check), str(column), contract)
        indexed = group.dropna(subset=["index"])
        values = pd.Series(indexed["failure_case"].to_numpy(), index=indexed["index"].astype(int))
        examples = _examples(values, rows, limit, with_values=check != "not_nullable")
        problems.append(f"column {column!r}: {_plural(count, 'value')} {words}: {examples}. {fix}")
    return problems


def validate_frame(
    frame: pd.DataFrame,
    contract: DataContract,
    max_examples: int = 5,
    *,
    rows: RowNumbers | None = None,
    task: str | None = None,
    time_column: str | None = None,
    unseen: str = "warn",
    inferred: tuple[str, ...] = (),
    data: DataParams | None = None,
) -> dict[str, dict[str, Any]]:
    """Raise PipelineError naming every problem, one line each; return the unseen categories
    (reported, not fatal, unless `unseen` is "error"). `inferred`: the columns whose rules
    come from this batch (checked for mixed numbers and text, read as `data` says)."""
    rows = rows or RowNumbers()
    if frame.empty:
        raise PipelineError(
            "the batch is empty: it has no rows (rule: at least 1 row); a file with only a "
            "header has no data to learn from."
        )
    if task is None:
        task = "regression" if contract.columns[contract.target].allowed is None else "multiclass"
    problems = structure_problems(frame, contract)
    problems += empty_problems(frame, contract)
    if data is not None:
        problems += mixed_problems(frame, contract, inferred, data, rows, max_examples)
    more, checked, reported = number_problems(frame, contract, rows, max_examples, task)
    problems += more
    problems += class_problems(frame, contract, task)
    problems += time_problems(frame, time_column, rows, max_examples)
    problems += rule_problems(checked, contract, rows, max_examples, reported)
    found = unseen_categories(frame, contract)
    if unseen == "error":
        problems += [_unseen_message(name, info, rows, unseen) for name, info in found.items()]
    if problems:
        raise PipelineError(
            f"data validation failed ({_plural(len(problems), 'problem')}; {rows.legend}):\n"
            + "\n".join(f"  - {problem}" for problem in problems)
            + f"\n{DONE_NOTHING}"
        )
    return found


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------
def _suggested_rule(frame: pd.DataFrame, name: str, params: Params) -> str:
    rule: ColumnRule = infer_column(
        frame[name], is_target=False, task=params.task, max_categories=10
    )
    body = rule.model_dump(mode="json", exclude_none=True, exclude={"role"})
    return yaml.safe_dump(body, default_flow_style=True, width=1000, sort_keys=False).strip()


def batch_warnings(
    frame: pd.DataFrame,
    contract: DataContract,
    params: Params,
    ingest: IngestReport | None,
    unseen: dict[str, dict[str, Any]],
    rows: RowNumbers,
    outside: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, str]]:
    data = params.data
    found = []
    dropped = ingest.dropped_rows.missing_target if ingest else 0
    if dropped:
        found.append(
            warning(
                data.target,
                "missing_target",
                f"{_plural(dropped, 'row')} without a target value "
                f"{'was' if dropped == 1 else 'were'} dropped (data.missing_target: drop); set it "
                "to error to stop on them instead.",
            )
        )
    for name in frame.columns:
        if name not in contract.columns:
            found.append(
                warning(
                    name,
                    "extra_column",
                    f"column {name!r} is not in schema.yaml, so it is ignored (not a feature). "
                    f"To train on it, add a rule for it to schema.yaml's columns, e.g. "
                    f"{name}: {_suggested_rule(frame, name, params)}; to silence this, list it "
                    "in data.drop.",
                )
            )
    found += [
        warning(name, "unseen_categories", _unseen_message(name, info, rows, "warn"))
        for name, info in unseen.items()
    ]
    found += [
        warning(name, "outside_observed_range", _outside_message(name, info))
        for name, info in (outside or {}).items()
    ]
    features = [name for name in contract.features if name in frame.columns]
    found += data_warnings(frame, features, contract.target, params.task, data)
    return found


def _say(lines: list[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)


def run_validate(params: Params) -> dict[str, Any]:
    """Stage `validate`: check paths.raw against schema.yaml (inferring it for a new source and
    updating it when params.yaml's data settings changed).

    A new or updated contract is written only once the batch has passed it, so a bad batch
    never becomes the rule.
    """
    frame = read_frame(params.paths.raw)
    path = params.paths.ingest_report
    ingest = read_record(path, IngestReport) if path.is_file() else None
    rows = RowNumbers(ingest.line_offset if ingest else None)
    if frame.empty:
        raise PipelineError(
            f"the batch from {params.data.source} has no rows (a header only?): there is "
            f"nothing to validate or learn from. {DONE_NOTHING}"
        )
    # Before the contract is inferred or followed: a split setting naming a missing column
    # would otherwise rewrite schema.yaml here and fail only in the split stage.
    problems = setting_problems(params.split, list(map(str, frame.columns)), "the data")
    if problems:
        raise PipelineError("\n".join(problems) + f"\n{DONE_NOTHING}")
    state = contract_for(params, frame)
    contract, inferred_because, changes = state.contract, state.inferred_because, state.changes
    unseen = validate_frame(
        frame,
        contract,
        params.validate_.max_examples,
        rows=rows,
        task=params.task,
        time_column=params.split.time_column,
        unseen=params.validate_.unseen_categories,
        inferred=state.inferred,
        data=params.data,
    )
    outside = outside_observed(frame, contract, rows, params.validate_.max_examples)
    warnings = batch_warnings(frame, contract, params, ingest, unseen, rows, outside)
    # A batch that passed is training data: the observed ranges cover it (drift reads them).
    contract, widened = widen_observed(contract, frame)
    if state.to_write or widened:
        write_text(contract.to_yaml(), params.paths.schema_file)
    report = {
        "status": "passed",
        "rows": len(frame),
        "columns": frame.shape[1],
        "schema": str(params.paths.schema_file),
        "schema_inferred": inferred_because,
        "schema_changes": list(changes),
        "dropped_rows": ingest.dropped_rows if ingest else DroppedRows(),
        "missing_values": missing_counts(frame),
        "ignored_columns": [name for name in frame.columns if name not in contract.columns],
        "unseen_categories": unseen,
        "outside_observed_range": outside,
        "observed_range_widened": widened,
        "warnings": warnings,
    }
    write_record(ValidationReport.model_validate(report), params.paths.validation_report)
    if changes:
        _say(
            [f"validate: {params.paths.schema_file} follows params.yaml; review and commit it:"]
            + [f"  - {change}" for change in changes]
        )
    _say([f"warning: {item['message']}" for item in warnings])
    return {
        "rows": len(frame),
        "columns": frame.shape[1],
        "schema": "inferred"
        if inferred_because
        else ("updated" if changes else ("observed ranges widened" if widened else "unchanged")),
        "warnings": len(warnings),
    }


def missing_counts(frame: pd.DataFrame) -> dict[str, int]:
    counts = frame.isna().sum()
    return {str(name): int(count) for name, count in counts.items() if count}
