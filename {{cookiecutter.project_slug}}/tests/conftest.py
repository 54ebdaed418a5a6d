"""Shared fixtures: small synthetic batches for each task and a throwaway project directory.

The data is tiny but has what real data has and the bundled datasets lack: text columns,
missing values and a target that depends on both kinds of feature, so every code path for
categorical and missing values runs in a few seconds.
"""

from __future__ import annotations

import copy
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }}.core.config import Params, load_params

TASKS = ("binary_classification", "multiclass", "regression")
N_ROWS = 300
SOURCE = "data/external/data.csv"
PROJECT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def make_frame(task: str, n_rows: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    """Two numeric and two categorical features with missing values; a learnable target."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, n_rows).round(1)
    income = rng.lognormal(10, 0.5, n_rows).round(2)
    plan = rng.choice(["basic", "plus", "premium"], n_rows)
    region = rng.choice(["north", "south", "east", "west"], n_rows)
    signal = (
        (age - 40) / 10
        + np.select([plan == "basic", plan == "plus"], [-1.5, 0.0], 1.5)
        + rng.normal(0, 0.5, n_rows)
    )
    if task == "binary_classification":
        target: Any = (signal > 0).astype(np.int64)
    elif task == "multiclass":
        target = np.select([signal < -0.7, signal < 0.7], ["low", "mid"], "high")
    else:
        target = 100 + 20 * signal
    frame = pd.DataFrame(
        {"age": age, "income": income, "plan": plan, "region": region, "target": target}
    )
    # Missing values in one numeric and one categorical feature (never in the target).
    frame.loc[rng.random(n_rows) < 0.1, "age"] = np.nan
    frame.loc[rng.random(n_rows) < 0.1, "plan"] = None
    return frame


def make_interaction_frame(n_rows: int = 1500, seed: int = 0) -> pd.DataFrame:
    """A binary target no linear model can learn and LightGBM learns easily.

    target = (x1 * x2 > 0) XOR (group == "b"), with 3% of the labels flipped, an irrelevant
    numeric feature and missing values: the candidate clearly beats the linear baseline.
    """
    rng = np.random.default_rng(seed)
    x1 = rng.normal(0, 1, n_rows)
    x2 = rng.normal(0, 1, n_rows)
    group = rng.choice(["a", "b"], n_rows)
    noise = rng.normal(0, 1, n_rows).round(3)
    target = ((x1 * x2 > 0) ^ (group == "b")) ^ (rng.random(n_rows) < 0.03)
    frame = pd.DataFrame(
        {
            "x1": x1.round(3),
            "x2": x2.round(3),
            "group": group,
            "noise": noise,
            "target": target.astype(np.int64),
        }
    )
    frame.loc[rng.random(n_rows) < 0.03, "noise"] = np.nan
    frame.loc[rng.random(n_rows) < 0.03, "x2"] = np.nan
    frame.loc[rng.random(n_rows) < 0.03, "group"] = None
    return frame


def make_params(task: str) -> dict[str, Any]:
    """The project's params.yaml, made fit for the tiny data: few trees, few resamples.

    Sections the tests do not care about (paths, and any added later) come from the project's
    own params.yaml, so the tests follow it; the sections below are set for every task.
    """
    classification = task != "regression"
    settings = yaml.safe_load(PROJECT_PARAMS.read_text(encoding="utf-8"))
    settings["task"] = task
    settings["data"] = {
        **settings["data"],
        "source": SOURCE,
        "format": "auto",
        "csv_separator": ",",
        "target": "target",
        "categorical": [],
        "numeric": [],
        "drop": [],
        "positive_class": None,
    }
    settings["validate"] = {**settings["validate"], "max_examples": 5}
    settings["split"] = {
        **settings["split"],
        "test_size": 0.25,
        "seed": 42,
        "stratify": classification,
    }
    settings["train"] = {
        "seed": 42,
        "floor": {"kind": "dummy"},
        "baseline": {"kind": "linear", "C": 1.0, "alpha": 1.0, "max_iter": 1000},
        "candidate": {
            "kind": "lightgbm",
            "n_estimators": 30,
            "learning_rate": 0.1,
            "num_leaves": 7,
            "min_child_samples": 5,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 1.0,
            "reg_lambda": 1.0,
        },
    }
    settings["evaluate"] = {
        "primary_metric": "roc_auc" if classification else "rmse",
        "bootstrap_samples": 200,
        "confidence": 0.95,
        "seed": 42,
    }
    settings["mlflow"] = {
        **settings["mlflow"],
        "experiment": "tests",
        "tracking_uri": "sqlite:///mlflow.db",
    }
    return settings


def write_params(settings: dict[str, Any], path: Path = Path("params.yaml")) -> Path:
    path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(params=TASKS)
def task(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def sample() -> Callable[..., pd.DataFrame]:
    """make_frame: another sample of a project's distribution (a batch to score or check)."""
    return make_frame


@pytest.fixture
def binary_frame() -> pd.DataFrame:
    return make_frame("binary_classification")


@pytest.fixture
def multiclass_frame() -> pd.DataFrame:
    return make_frame("multiclass")


@pytest.fixture
def regression_frame() -> pd.DataFrame:
    return make_frame("regression")


class Project:
    """A project directory (the cwd during the test) with data and params for one task."""

    def __init__(self, root: Path, task: str, frame: pd.DataFrame | None = None) -> None:
        self.root = root
        self.task = task
        self.settings = make_params(task)
        self.frame = make_frame(task) if frame is None else frame
        self.write_data(self.frame)
        self.write_params()

    def write_data(self, frame: pd.DataFrame, source: str = SOURCE) -> Path:
        path = self.root / source
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        return path

    def write_params(self, **sections: dict[str, Any]) -> Path:
        """Write params.yaml; keyword arguments update sections, e.g. data={"drop": [...]}."""
        for section, values in sections.items():
            self.settings[section] = {**self.settings[section], **values}
        return write_params(self.settings, self.root / "params.yaml")

    def params(self) -> Params:
        return load_params(self.root / "params.yaml")

    def settings_copy(self) -> dict[str, Any]:
        return copy.deepcopy(self.settings)

    def copy_to(self, root: Path) -> Project:
        """The same project, files and all, in another directory."""
        shutil.copytree(self.root, root, dirs_exist_ok=True, symlinks=True)
        clone = copy.deepcopy(self)
        clone.root = root
        return clone


@pytest.fixture(autouse=True)
def isolated_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real tracking store: MLflow writes to a store in tmp_path."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")


@pytest.fixture
def make_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Project]:
    """Create the project for a task in tmp_path and make it the working directory."""

    def create(task: str) -> Project:
        monkeypatch.chdir(tmp_path)
        return Project(tmp_path, task)

    return create


@pytest.fixture
def project(make_project: Callable[[str], Project]) -> Project:
    """A binary-classification project, the default for tests that need just one."""
    return make_project("binary_classification")


PIPELINE = ("ingest", "validate", "split", "train", "evaluate")
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def make_dvc_project(root: Path, frame: pd.DataFrame, **sections: dict[str, Any]) -> Project:
    """A binary project in `root` that is a DVC repository reproduced with `dvc repro`, as
    `promote` requires (it checks the outputs against dvc.lock): the project's own dvc.yaml,
    its sources (symlinked) and an MLflow store in the directory."""
    from dvc.repo import Repo

    project = Project(root, "binary_classification", frame=frame)
    project.write_params(**sections)
    shutil.copy(PROJECT_ROOT / "dvc.yaml", root / "dvc.yaml")
    (root / "src").symlink_to(PROJECT_ROOT / "src", target_is_directory=True)
    Repo.init(str(root), no_scm=True).close()
    with Repo(str(root)) as repo:
        repo.reproduce()
    return project


@pytest.fixture(scope="session")
def trained_interaction_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A binary project on make_interaction_frame, reproduced with DVC (tracked in its own
    store), with gate.max_regression loosened so a retrained candidate counts as no worse.

    Built once per session; never use it directly (tests would share its registry): take
    `interaction_project`, a fresh copy.
    """
    root = tmp_path_factory.mktemp("interaction")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        # Absolute (MLflow caches stores by URI), and inside the project, so the copies of
        # `interaction_project` (each with its own absolute URI) name the same store as this.
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        patch.setenv("DVC_NO_ANALYTICS", "1")
        return make_dvc_project(root, make_interaction_frame(), gate={"max_regression": 0.2})


@pytest.fixture
def interaction_project(
    trained_interaction_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Project:
    """A copy of trained_interaction_project in tmp_path (the cwd), with its MLflow store
    (tmp_path/mlflow.db, see isolated_mlflow): the candidate is logged and judged but not
    registered, and the registry is empty."""
    monkeypatch.chdir(tmp_path)
    return trained_interaction_project.copy_to(tmp_path)


@pytest.fixture
def frame_for() -> Callable[..., pd.DataFrame]:
    """make_frame, for tests that need a batch other than the default one."""
    return make_frame


@pytest.fixture
def settings_for() -> Callable[[str], dict[str, Any]]:
    """make_params, for tests that edit the settings before writing them."""
    return make_params


@pytest.fixture
def params_file(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Write settings to tmp_path/params.yaml and return its path."""
    return lambda settings: write_params(settings, tmp_path / "params.yaml")


@pytest.fixture
def count_model_file_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[], tuple[Counter[str], Counter[str]]]:
    """Call it to start counting, by file name, how often model files are hashed
    (artifacts.file_sha256) and unpickled (joblib.load): (hashed, loaded)."""

    def start() -> tuple[Counter[str], Counter[str]]:
        import joblib

        from {{ cookiecutter.package_name }}.core import artifacts

        hashed: Counter[str] = Counter()
        loaded: Counter[str] = Counter()
        real_hash, real_load = artifacts.file_sha256, joblib.load

        def counting_hash(path: Path) -> str:
            hashed[Path(path).name] += 1
            return real_hash(path)

        def counting_load(path: Any, *args: Any, **kwargs: Any) -> Any:
            loaded[Path(path).name] += 1
            return real_load(path, *args, **kwargs)

        monkeypatch.setattr(artifacts, "file_sha256", counting_hash)
        monkeypatch.setattr(joblib, "load", counting_load)
        return hashed, loaded

    return start


@pytest.fixture
def add_schema_rule(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to add a rule (`age` is not 33.25, check `age_not_33.25`) to every pandera schema
    the serving code builds from the contract, with no checking code changed."""

    def add() -> None:
        import pandera.pandas as pa

        from {{ cookiecutter.package_name }}.serving import scorer as serving

        built = serving.to_pandera

        def with_a_rule(*args: Any, **kwargs: Any) -> Any:
            schema = built(*args, **kwargs)
            schema.columns["age"].checks.append(
                pa.Check(lambda age: age != 33.25, name="age_not_33.25")
            )
            return schema

        monkeypatch.setattr(serving, "to_pandera", with_a_rule)

    return add


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on a DVC-reproduced project with a registry (trained_interaction_project) retrain
    and register models through subprocesses: minutes, not seconds. They are `slow`, left out
    of the default run and run by CI (`uv run pytest -m "slow or not slow"`)."""
    for item in items:
        if "trained_interaction_project" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
