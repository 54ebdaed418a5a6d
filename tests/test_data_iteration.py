"""Iterating on your own data in an installed bake: edit params.yaml, `dvc repro`, repeat.

Slow. One baked project for the whole file; the tests run in file order, each continuing from
the state the previous one left (issue 8: settings that take effect after the first run, and a
holdout that stays put as rows are appended).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Project, prepare_project

pytestmark = pytest.mark.slow

SOURCE = "data/external/survey.csv"
# A European export: ';'-separated, decimal commas, a row-number column, two numeric codes
# (ccs, mcs) that are really categories, and a yes/no target.
MAKE_DATA = """
import sys
import numpy as np, pandas as pd
start, rows = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(start)
age = rng.normal(45, 12, rows).round(1)
income = rng.lognormal(8, 0.4, rows).round(2)
ccs = rng.integers(1, 5, rows)
mcs = rng.integers(0, 5, rows)
signal = (age - 45) / 12 + np.where(ccs == 2, 1.5, -0.5) + rng.normal(0, 0.7, rows)
frame = pd.DataFrame({"rownames": np.arange(start + 1, start + rows + 1), "age": age,
                      "income": income, "ccs": ccs, "mcs": mcs,
                      "affairs": np.where(signal > 0, "yes", "no")})
frame.to_csv("data/external/survey.csv", sep=";", decimal=",", index=False,
             mode="a" if start else "w", header=not start)
"""


def set_params(project: Project, **changes: Any) -> None:
    """Set params.yaml keys, `section__key=value`, as a user edits the file."""
    path = project.path / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        params[section][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def repro(project: Project) -> str:
    result = project.repro()
    return result.stdout + result.stderr


def contract(project: Project) -> dict[str, Any]:
    return yaml.safe_load((project.path / "schema.yaml").read_text(encoding="utf-8"))["columns"]


def model_features(project: Project) -> dict[str, list[str]]:
    """The numeric and categorical features the trained models use, as train recorded them."""
    for name in ("meta.json", "manifest.json"):
        path = project.path / "models" / name
        if path.is_file():
            recorded = json.loads(path.read_text(encoding="utf-8"))
            found = _find_lists(recorded)
            if found:
                return found
    raise AssertionError("the train stage recorded no numeric/categorical feature lists")


def _find_lists(value: Any) -> dict[str, list[str]]:
    if isinstance(value, dict):
        if isinstance(value.get("numeric"), list) and isinstance(value.get("categorical"), list):
            return {"numeric": value["numeric"], "categorical": value["categorical"]}
        for child in value.values():
            if found := _find_lists(child):
                return found
    return {}


def holdout_rows(project: Project) -> set[tuple]:
    """The holdout's rows as tuples of their values, the columns of data.drop included (the
    split keeps them, so a champion that used one can still score the holdout)."""
    script = (
        "import pandas as pd, json; frame = pd.read_parquet('data/processed/test.parquet');"
        "print(json.dumps(frame.astype(str).values.tolist()))"
    )
    output = project.run("uv", "run", "python", "-c", script).stdout
    return {tuple(row) for row in json.loads(output.strip().splitlines()[-1])}


def training_rows(project: Project) -> set[tuple]:
    script = (
        "import pandas as pd, json; frame = pd.read_parquet('data/processed/train.parquet');"
        "print(json.dumps(frame.astype(str).values.tolist()))"
    )
    output = project.run("uv", "run", "python", "-c", script).stdout
    return {tuple(row) for row in json.loads(output.strip().splitlines()[-1])}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The default bake pointed at the survey file, read with ';' but not yet ','."""
    project = prepare_project(tmp_path_factory.mktemp("iteration"), {"project_name": "Survey"})
    project.run("uv", "run", "python", "-c", MAKE_DATA, "0", "800")
    set_params(
        project,
        data__source=SOURCE,
        data__target="affairs",
        data__csv_separator=";",
    )
    project.first_output = repro(project)  # type: ignore[attr-defined]
    return project


def test_first_run_warns_about_the_row_number_and_the_decimal_commas(project: Project) -> None:
    output = project.first_output  # type: ignore[attr-defined]
    columns = contract(project)
    assert columns["age"]["kind"] == "categorical", "decimal commas read with '.' are text"
    assert re.search(r"warning: column 'age' is text.*data\.csv_decimal: ','", output), output
    assert re.search(r"warning: column 'rownames' rises .*data\.drop", output), output
    report = json.loads((project.path / "reports/validation.json").read_text(encoding="utf-8"))
    assert {"rownames": "row_order", "age": "number_format"}.items() <= {
        w["column"]: w["kind"] for w in report["warnings"]
    }.items()


def test_csv_decimal_after_the_first_run_takes_effect(project: Project) -> None:
    """Was: adding csv_decimal: ',' left the columns categorical."""
    set_params(project, data__csv_decimal=",")
    output = repro(project)
    assert "'age': categorical -> numeric, rules inferred again (data.csv_decimal)" in output
    assert contract(project)["age"]["kind"] == contract(project)["income"]["kind"] == "numeric"
    features = model_features(project)
    assert {"age", "income"} <= set(features["numeric"]), features


def split_columns(project: Project) -> list[str]:
    """The columns of the split's holdout file."""
    script = (
        "import pandas as pd, json; frame = pd.read_parquet('data/processed/test.parquet');"
        "print(json.dumps(list(map(str, frame.columns))))"
    )
    output = project.run("uv", "run", "python", "-c", script).stdout
    return json.loads(output.strip().splitlines()[-1])


def test_drop_after_the_first_run_takes_effect(project: Project) -> None:
    """Was: `column '<table>': rule column_in_dataframe failed ... 'rownames'`. The dropped
    column stays in the split's files (for the champion's comparison), never as a feature."""
    set_params(project, data__drop=["rownames"])
    output = repro(project)
    assert "'rownames': removed (data.drop)" in output
    assert "rownames" not in contract(project)
    features = model_features(project)
    assert "rownames" not in features["numeric"] + features["categorical"]
    assert "rownames" in split_columns(project)


def test_categorical_after_the_first_run_takes_effect(project: Project) -> None:
    """Was: ignored; the models still saw both codes as numeric and every metric was equal."""
    scores_before = (project.path / "metrics/scores.json").read_text(encoding="utf-8")
    set_params(project, data__categorical=["ccs", "mcs"])
    output = repro(project)
    assert "'ccs': numeric -> categorical" in output
    assert contract(project)["ccs"]["categories"] == ["1", "2", "3", "4"]
    features = model_features(project)
    assert {"ccs", "mcs"} <= set(features["categorical"]), features
    assert (project.path / "metrics/scores.json").read_text(encoding="utf-8") != scores_before
    project.run("git", "add", "-A")
    project.run("git", "commit", "--quiet", "--no-verify", "-m", "Settings")


def test_rows_appended_in_place_keep_the_old_holdout(project: Project) -> None:
    """Was: after appending 10% of rows, 254 of 428 old holdout rows moved into training."""
    holdout, training = holdout_rows(project), training_rows(project)
    split_before = json.loads((project.path / "reports/split.json").read_text(encoding="utf-8"))
    project.run("uv", "run", "python", "-c", MAKE_DATA, "800", "200")
    output = repro(project)
    assert "Running stage 'split'" in output
    holdout_after, training_after = holdout_rows(project), training_rows(project)
    assert holdout <= holdout_after, f"{len(holdout - holdout_after)} holdout rows moved"
    assert training <= training_after, f"{len(training - training_after)} training rows moved"
    assert len(holdout_after) > len(holdout)
    split_after = json.loads((project.path / "reports/split.json").read_text(encoding="utf-8"))
    assert split_after["fingerprint"] == split_before["fingerprint"]
    assert split_after["rows"]["holdout"] == len(holdout_after)


def champion_check(project: Project) -> dict[str, Any]:
    report = json.loads((project.path / "reports/gate.json").read_text(encoding="utf-8"))
    return next(c for c in report["checks"] if c["name"] == "not_worse_than_champion")


def test_a_champion_is_compared_only_on_rows_it_never_saw(project: Project) -> None:
    """Was: after appending data, 51% of the new holdout had been in the champion's training
    set, and the gate called a better candidate worse. Under the same split the whole holdout
    is unseen by the champion; after the split changes, only the rows it never saw count."""
    cli = ("uv", "run", project.package)
    project.run(*cli, "promote")
    project.run(*cli, "promote", "--to", "champion")
    live = project.run(*cli, "gate", check=False).stdout
    holdout = len(holdout_rows(project))
    assert f"on all {holdout} holdout rows (same split: it never trained on them)" in live, live
    set_params(project, split__test_size=0.3)  # a larger holdout: a third of it was trained on
    repro(project)
    changed = champion_check(project)
    holdout = len(holdout_rows(project))
    assert changed["status"] in {"pass", "fail"}, changed
    rows = changed["value"]["rows"]
    assert 0 < rows < holdout, changed
    assert f"on {rows} of {holdout} holdout rows it never trained on" in changed["detail"]


def test_benchmark_generator_writes_a_readable_file(project: Project, tmp_path: Path) -> None:
    """benchmarks/make_big_csv.py (run with the project's interpreter) makes a file the
    pipeline reads: the figures in benchmarks/data_stages.py are on data like this."""
    generator = Path(__file__).resolve().parents[1] / "benchmarks" / "make_big_csv.py"
    out = tmp_path / "big.csv"
    project.run("uv", "run", "python", str(generator), "--rows", "3000", "--out", str(out))
    header = out.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert len(header) == 14 and header[-1] == "churned"
