"""Command line: one subcommand per pipeline stage (DVC calls these; see dvc.yaml).

Thin on purpose: parse arguments, load params.yaml, call the stage, print a one-line summary.
Stage modules are imported inside each command so `--help` answers at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from {{ cookiecutter.package_name }}.errors import PipelineError

app = typer.Typer(
    help="{{ cookiecutter.project_name }}: the pipeline stages behind `uv run dvc repro`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ParamsOption = Annotated[
    Path, typer.Option("--params", help="The params file to read.", dir_okay=False)
]


def _run(stage: Callable[[Any], Any], params_file: Path) -> None:
    """Load params, run a stage, report: user errors as one message and exit code 1."""
    from {{ cookiecutter.package_name }}.config import load_params

    try:
        summary = stage(load_params(params_file))
    except PipelineError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"{stage.__name__.removeprefix('run_')}: {json.dumps(summary, default=str)}")


@app.command()
def ingest(params: ParamsOption = Path("params.yaml")) -> None:
    """Read data.source (bundled dataset, CSV or Parquet) into paths.raw."""
    from {{ cookiecutter.package_name }}.data import run_ingest

    _run(run_ingest, params)


@app.command()
def validate(params: ParamsOption = Path("params.yaml")) -> None:
    """Check the raw batch against schema.yaml; stop the pipeline on any broken rule."""
    from {{ cookiecutter.package_name }}.schema import run_validate

    _run(run_validate, params)


@app.command()
def split(params: ParamsOption = Path("params.yaml")) -> None:
    """Split the validated batch into train and holdout sets."""
    from {{ cookiecutter.package_name }}.split import run_split

    _run(run_split, params)


@app.command()
def train(params: ParamsOption = Path("params.yaml")) -> None:
    """Fit the dummy floor, the linear baseline and the LightGBM candidate."""
    from {{ cookiecutter.package_name }}.train import run_train

    _run(run_train, params)


@app.command()
def evaluate(params: ParamsOption = Path("params.yaml")) -> None:
    """Score all models on the holdout with bootstrap intervals; write metrics and plots."""
    from {{ cookiecutter.package_name }}.evaluate import run_evaluate

    _run(run_evaluate, params)


@app.command()
def track(params: ParamsOption = Path("params.yaml")) -> None:
    """Log params, metrics and models of this run to MLflow."""
    from {{ cookiecutter.package_name }}.tracking import run_track

    _run(run_track, params)
