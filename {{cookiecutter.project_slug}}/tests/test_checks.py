"""Warnings: identifiers, row numbers, leaks and number formats are named, with data.drop or
the CSV setting as the fix; ordinary features raise none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.core.config import DataParams
from {{ cookiecutter.package_name }}.pipeline.data_warnings import (
    constant_warnings,
    data_warnings,
    date_warnings,
    duplicate_warnings,
    identifier_warnings,
    leak_warnings,
    number_format_warnings,
)
from {{ cookiecutter.package_name }}.promotion.gate import PASS, check_data_warnings

FEATURES = ["age", "income", "plan", "region"]
CSV = DataParams(source="data/external/data.csv", target="target")


def kinds(found: list[dict[str, str]]) -> dict[str, str]:
    return {item["column"]: item["kind"] for item in found}


def test_ordinary_data_raises_no_warning(frame_for, task):
    frame = frame_for(task, n_rows=2000)
    assert data_warnings(frame, FEATURES, "target", task, CSV) == []


def test_every_warning_has_the_shape_the_gate_report_copies(binary_frame):
    frame = binary_frame.assign(row=np.arange(len(binary_frame)))
    (found,) = identifier_warnings(frame, ["row"])
    assert set(found) == {"column", "kind", "message"}


def test_a_row_number_is_named(binary_frame):
    """Was: the top feature by gain, lifting AUC from 0.804 to 0.838."""
    frame = binary_frame.assign(rownames=np.arange(1, len(binary_frame) + 1))
    (found,) = identifier_warnings(frame, [*FEATURES, "rownames"])
    assert found["kind"] == "row_order"
    assert "data.drop" in found["message"]


@pytest.mark.parametrize(
    "values",
    [
        lambda n: [f"Passenger {i}" for i in np.random.default_rng(0).permutation(n)],
        lambda n: np.random.default_rng(0).permutation(n) * 7 + 1000,
    ],
    ids=["names", "shuffled ids"],
)
def test_an_identifier_is_named(binary_frame, values):
    frame = binary_frame.assign(id=values(len(binary_frame)))
    assert kinds(identifier_warnings(frame, [*FEATURES, "id"])) == {"id": "identifier"}


def test_continuous_measurements_are_not_identifiers(binary_frame):
    frame = binary_frame.assign(noise=np.random.default_rng(0).normal(size=len(binary_frame)))
    assert identifier_warnings(frame, [*FEATURES, "noise"]) == []


@pytest.mark.parametrize("task", ["binary_classification", "multiclass", "regression"])
def test_a_copy_of_the_target_is_a_leak(frame_for, task):
    """Was: AUC 1.000 and a promotion."""
    frame = frame_for(task, n_rows=1000)
    frame["copy"] = frame["target"]
    frame["scaled"] = (
        frame["target"].astype("category").cat.codes * 3.5
        if task != "regression"
        else frame["target"] * 2 + 1
    )
    found = leak_warnings(frame, [*FEATURES, "copy", "scaled"], "target", task)
    assert kinds(found) == {"copy": "leak", "scaled": "leak"}
    assert all("data.drop" in item["message"] for item in found)


def test_a_feature_that_separates_the_classes_anywhere_is_a_leak(binary_frame):
    """Not only monotone: the target encoded as far from zero on both sides."""
    rng = np.random.default_rng(1)
    sign = rng.choice([-1, 1], len(binary_frame))
    frame = binary_frame.assign(
        leak=np.where(binary_frame["target"] == 1, sign * rng.uniform(5, 6, len(sign)), 0.1 * sign)
    )
    assert kinds(leak_warnings(frame, ["leak"], "target", "binary_classification")) == {
        "leak": "leak"
    }


def test_a_strong_but_noisy_feature_is_not_a_leak(binary_frame):
    rng = np.random.default_rng(2)
    signal = binary_frame["target"] + rng.normal(0, 0.4, len(binary_frame))
    frame = binary_frame.assign(strong=signal)
    assert leak_warnings(frame, ["strong"], "target", "binary_classification") == []


def test_a_decimal_comma_read_as_text_suggests_csv_decimal():
    frame = pd.DataFrame({"x": [f"{i},{i % 10}5" for i in range(100)], "target": 0})
    (found,) = number_format_warnings(frame.astype({"x": "string"}), ["x"], CSV)
    assert "data.csv_decimal: ','" in found["message"]


def test_thousands_read_as_text_suggest_csv_thousands():
    values = [f"{1 + i % 9}.{i:03d}" for i in range(100)] + ["970", "12"]
    frame = pd.DataFrame({"x": values}).astype("string")
    european = DataParams(source=CSV.source, target="target", csv_decimal=",")
    (found,) = number_format_warnings(frame, ["x"], european)
    assert "data.csv_thousands: '.'" in found["message"]


def test_thousands_read_as_decimals_suggest_csv_thousands():
    """'3.504' read with '.' as the decimal mark gives 3.504, 1000x too small."""
    values = [float(f"{1 + i % 4}.{(7 * i) % 1000:03d}") for i in range(200)] + [970.0]
    frame = pd.DataFrame({"weight": values})
    (found,) = number_format_warnings(frame, ["weight"], CSV)
    assert "data.csv_thousands: '.'" in found["message"]
    precise = frame.assign(weight=frame["weight"] + 0.0001)
    assert number_format_warnings(precise, ["weight"], CSV) == []


def test_a_few_words_in_a_number_column_are_named():
    values = [str(i) for i in range(100)] + ["fifty", "n.a."]
    frame = pd.DataFrame({"x": values}).astype("string")
    (found,) = number_format_warnings(frame, ["x"], CSV)
    assert "'fifty'" in found["message"] and "data.numeric" in found["message"]


def test_no_number_format_hints_for_parquet_or_bundled_data():
    frame = pd.DataFrame({"x": [f"{i},5" for i in range(100)]}).astype("string")
    parquet = DataParams(source="data/external/data.parquet", target="target")
    assert number_format_warnings(frame, ["x"], parquet) == []


@pytest.mark.parametrize("task", ["binary_classification", "multiclass", "regression"])
def test_duplicated_rows_are_not_leaks(frame_for, task):
    """Was: with every row twice, sorted neighbours are copies of one row, so 'age' and
    'income' were reported as predicting the target almost perfectly."""
    frame = frame_for(task, n_rows=600)
    frame["income"] = np.random.default_rng(3).normal(size=len(frame))  # no ties
    doubled = pd.concat([frame, frame], ignore_index=True)
    assert leak_warnings(doubled, FEATURES, "target", task) == []
    found = data_warnings(doubled, FEATURES, "target", task, CSV)
    assert kinds(found) == {"(rows)": "duplicate_rows"}
    assert "600 of the 1200 rows (50%) repeat another row exactly" in found[0]["message"]


def test_a_leak_is_still_found_in_duplicated_rows(frame_for):
    frame = frame_for("binary_classification", n_rows=600).assign(copy=lambda f: f["target"])
    doubled = pd.concat([frame, frame], ignore_index=True)
    found = leak_warnings(doubled, [*FEATURES, "copy"], "target", "binary_classification")
    assert kinds(found) == {"copy": "leak"}


def test_a_few_repeated_rows_raise_no_warning(binary_frame):
    frame = pd.concat([binary_frame, binary_frame.head(5)], ignore_index=True)
    assert duplicate_warnings(frame, FEATURES, "target") == []


def test_rows_of_a_few_categories_repeat_without_a_warning(binary_frame):
    """3 plans x 4 regions x 2 classes: 300 rows can only repeat; nothing was doubled."""
    assert duplicate_warnings(binary_frame, ["plan", "region"], "target") == []


def _times(n: int, unique: bool) -> pd.Series:
    rng = np.random.default_rng(1)
    hours = rng.permutation(n) if unique else rng.integers(0, 100, n)
    hours[np.argmin(hours)] = 0  # the first time is midnight: shown as the date alone
    return pd.Series(pd.Timestamp("2021-03-04") + pd.to_timedelta(hours, "h")).astype(str)


@pytest.mark.parametrize("unique", [False, True], ids=["repeated", "unique"])
def test_a_date_column_is_named_with_the_time_split_advice(binary_frame, unique):
    """Was: repeated timestamps trained silently as a category of 6,900 levels, and a unique
    date got the identifier advice (split.key) instead of split.time_column."""
    frame = binary_frame.assign(when=_times(len(binary_frame), unique))
    found = data_warnings(frame, [*FEATURES, "when"], "target", "binary_classification", CSV)
    assert kinds(found) == {"when": "date"}
    message = found[0]["message"]
    assert "holds dates or times (e.g. '2021-03-04' and " in message
    assert "split.method: time and split.time_column: when" in message
    assert "data.drop" in message and "split.key" not in message
    # Advice, not a refusal: a date feature does not block the gate.
    assert check_data_warnings(found, [*FEATURES, "when"], []).status == PASS


def test_parquet_timestamps_are_shown_as_dates(binary_frame):
    """A Parquet timestamp reads as '2021-03-04 00:00:00.000000000': messages show the date."""
    days = pd.date_range("2021-03-04", periods=len(binary_frame), freq="D").astype(str)
    frame = binary_frame.assign(day=[f"{day} 00:00:00.000000000" for day in days])
    (found,) = date_warnings(frame, ["day"], CSV)
    assert "(e.g. '2021-03-04' and '2021-12-28')" in found["message"]


def test_years_stored_as_times_are_named_as_numbers(binary_frame):
    """Was: years converted to times (1970-01-01 00:00:00.000002019) were categories, each
    new year 'unseen'."""
    years = np.random.default_rng(0).choice([2019, 2020, 2021], len(binary_frame))
    frame = binary_frame.assign(year=pd.Series(pd.to_datetime(years)).astype(str))
    (found,) = date_warnings(frame, [*FEATURES, "year"], CSV)
    assert "all fall in the first millisecond of 1970-01-01" in found["message"]
    assert "numbers such as years (2021)" in found["message"]
    assert "store 'year' as plain numbers" in found["message"]


def test_text_that_is_not_dates_is_not_a_date(binary_frame):
    frame = binary_frame.assign(
        code=[f"{i % 7}-{i % 5}-x" for i in range(len(binary_frame))],
        version=[f"1.{i % 3}.{i % 4}" for i in range(len(binary_frame))],
    )
    assert date_warnings(frame, [*FEATURES, "code", "version"], CSV) == []


def test_a_date_listed_in_data_categorical_is_the_users_choice(binary_frame):
    frame = binary_frame.assign(when=_times(len(binary_frame), False))
    forced = CSV.model_copy(update={"categorical": ["when"]})
    assert date_warnings(frame, ["when"], forced) == []


@pytest.mark.parametrize("value", ["EUR", 5.0])
def test_a_constant_column_is_named(binary_frame, value):
    frame = binary_frame.assign(currency=value)
    frame.loc[:9, "currency"] = None
    found = data_warnings(frame, [*FEATURES, "currency"], "target", "binary_classification", CSV)
    assert kinds(found) == {"currency": "constant"}
    message = found[0]["message"]
    shown = "'EUR'" if value == "EUR" else "5"
    assert f"column 'currency' holds the same value, {shown}, in every row that has" in message
    assert "10 of the 300 are empty" in message and "data.drop" in message
    assert check_data_warnings(found, [*FEATURES, "currency"], []).status == PASS


def test_two_values_are_not_constant(binary_frame):
    frame = binary_frame.assign(flag=["a"] * (len(binary_frame) - 1) + ["b"])
    assert constant_warnings(frame, [*FEATURES, "flag"]) == []
