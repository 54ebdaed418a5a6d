"""Reading and writing stage outputs: the hand-off between DVC stages.

A stage must create the directory of its outputs (DVC does not), and a missing input should
say which stage produces it instead of raising a bare FileNotFoundError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from {{ cookiecutter.package_name }}.core.errors import PipelineError


def _require(path: Path) -> None:
    if not path.exists():
        raise PipelineError(f"{path} does not exist: run the earlier stages (uv run dvc repro).")


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def read_frame(path: Path) -> pd.DataFrame:
    _require(path)
    return pd.read_parquet(path)


def write_json(payload: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    _require(path)
    return json.loads(path.read_text(encoding="utf-8"))


def write_text(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
