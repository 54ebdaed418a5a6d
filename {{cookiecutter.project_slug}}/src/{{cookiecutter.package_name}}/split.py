"""Split the validated batch into train and holdout sets, stratified for classification.

Written with numpy rather than scikit-learn's train_test_split: importing scikit-learn costs
several seconds in a stage that otherwise takes well under one, and the stratified shuffle is a
few lines whose properties the tests pin down.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }}.config import Params
from {{ cookiecutter.package_name }}.errors import PipelineError
from {{ cookiecutter.package_name }}.files import read_frame, write_frame

MIN_ROWS_PER_SIDE = 2


def holdout_mask(labels: pd.Series | None, n_rows: int, test_size: float, seed: int) -> np.ndarray:
    """Boolean mask of holdout rows; with labels, each class keeps its share on both sides."""
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


def split_frame(
    frame: pd.DataFrame, target: str, test_size: float, seed: int, stratify: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    labels = frame[target] if stratify else None
    mask = holdout_mask(labels, len(frame), test_size, seed)
    train, test = frame[~mask], frame[mask]
    if min(len(train), len(test)) < MIN_ROWS_PER_SIDE:
        raise PipelineError(
            f"split.test_size={test_size} leaves {len(train)} training and {len(test)} holdout "
            f"rows out of {len(frame)}; each side needs at least {MIN_ROWS_PER_SIDE}."
        )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def run_split(params: Params) -> dict[str, int]:
    """Stage `split`: paths.raw -> paths.train, paths.test (only after validation passed)."""
    frame = read_frame(params.paths.raw)
    stratify = params.split.stratify and params.is_classification
    train, test = split_frame(
        frame, params.data.target, params.split.test_size, params.split.seed, stratify
    )
    write_frame(train, params.paths.train)
    write_frame(test, params.paths.test)
    return {"train_rows": len(train), "test_rows": len(test)}
