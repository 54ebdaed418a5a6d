"""Command line: one subcommand per pipeline stage (DVC calls these; see dvc.yaml).

Thin on purpose: parse arguments, load params.yaml, call the stage, print a one-line summary.
Stage modules are imported inside each command so `--help` answers at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from {{ cookiecutter.package_name }}.errors import PipelineError

app = typer.Typer(
    help="The pipeline stages behind `uv run dvc repro`, and the promotion commands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ParamsOption = Annotated[
    Path, typer.Option("--params", help="The params file to read.", dir_okay=False)
]


def _run(
    stage: Callable[[Any], Any],
    params_file: Path,
    render: Callable[[Any], str] | None = None,
) -> Any:
    """Load params, run a stage, report: user errors as one message and exit code 1."""
    from {{ cookiecutter.package_name }}.config import load_params

    try:
        summary = stage(load_params(params_file))
    except PipelineError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from None
    if render is None:
        typer.echo(f"{stage.__name__.removeprefix('run_')}: {json.dumps(summary, default=str)}")
    else:
        typer.echo(render(summary))
    return summary


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


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
def evaluate(
    params: ParamsOption = Path("params.yaml"),
    track: Annotated[
        bool, typer.Option(help="Also log the run to MLflow (what the DVC stage does).")
    ] = True,
) -> None:
    """Score all models on the holdout with bootstrap intervals; write metrics and plots.

    Then log the run to MLflow in the same process, so the models are loaded once.
    """
    from {{ cookiecutter.package_name }}.evaluate import run_evaluate

    _run(run_evaluate, params)
    if track:
        from {{ cookiecutter.package_name }}.tracking import run_track

        _run(run_track, params)


@app.command()
def metrics(params: ParamsOption = Path("params.yaml")) -> None:
    """Print the holdout metrics of every model with their intervals, one row per metric."""
    from {{ cookiecutter.package_name }}.evaluate import format_table
    from {{ cookiecutter.package_name }}.files import read_json

    def load(loaded: Any) -> str:
        return format_table(read_json(loaded.paths.scores), read_json(loaded.paths.intervals))

    _run(load, params, render=str)


@app.command()
def track(params: ParamsOption = Path("params.yaml")) -> None:
    """Log the last evaluation to MLflow again (e.g. after the tracking server was down)."""
    from {{ cookiecutter.package_name }}.tracking import run_track

    _run(run_track, params)


@app.command()
def gate(
    params: ParamsOption = Path("params.yaml"),
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Exit 0 even on reject (the DVC stage).")
    ] = False,
) -> None:
    """Decide whether the candidate may be promoted; exit 1 when it must not be."""
    from {{ cookiecutter.package_name }}.gate import render_markdown, run_gate

    report = _run(run_gate, params, render=render_markdown)
    if report["decision"] != "promote" and not report_only:
        _fail(f"do not promote: failed {', '.join(report['failed_checks'])} (reports/gate.md).")


class Alias(StrEnum):
    challenger = "challenger"
    champion = "champion"


@app.command()
def promote(
    params: ParamsOption = Path("params.yaml"),
    to: Annotated[
        Alias,
        typer.Option(help="challenger: register the candidate; champion: serve a challenger."),
    ] = Alias.challenger,
    version: Annotated[
        int | None,
        typer.Option(
            help="With --to champion: the version to promote (default: the challenger).", min=1
        ),
    ] = None,
) -> None:
    """Register the candidate as `challenger`, or move `champion` to a version that passed."""
    from {{ cookiecutter.package_name }}.gate import run_gate
    from {{ cookiecutter.package_name }}.registry import (
        promote_to_champion,
        register_candidate,
    )

    def run_promote(loaded: Any) -> dict[str, Any]:
        if to is Alias.champion:
            return promote_to_champion(loaded, version)
        if version is not None:
            raise PipelineError("--version goes with --to champion.")
        report = run_gate(loaded)  # against the registry's champion as it is now
        if report["decision"] != "promote":
            raise PipelineError(
                f"the gate rejected the candidate (failed {', '.join(report['failed_checks'])}); "
                "nothing was registered. See reports/gate.md."
            )
        return register_candidate(loaded, report)

    _run(run_promote, params, render=_describe_move)


@app.command()
def rollback(
    params: ParamsOption = Path("params.yaml"),
    to: Annotated[
        int | None, typer.Option("--to", help="Give champion to this version.", min=1)
    ] = None,
) -> None:
    """Move `champion` back to the version that held it before (or to --to VERSION)."""
    from {{ cookiecutter.package_name }}.registry import rollback as roll_back

    _run(lambda loaded: roll_back(loaded, to), params, render=_describe_move)


@app.command()
def models(params: ParamsOption = Path("params.yaml")) -> None:
    """List registered versions with their aliases and gate outcomes."""
    from {{ cookiecutter.package_name }}.registry import list_versions

    def render(rows: list[dict[str, Any]]) -> str:
        if not rows:
            return "no registered versions yet: `promote` registers the first one."
        lines = [f"{'version':>7}  {'aliases':<22} {'gate':<8} {'failed checks':<24} git commit"]
        lines += [
            f"{row['version']:>7}  {','.join(row['aliases']) or '-':<22} {row['gate']:<8} "
            f"{row['failed_checks'] or '-':<24} {row['git_commit'] or '-'}"
            for row in rows
        ]
        return "\n".join(lines)

    _run(list_versions, params, render=render)


def _describe_move(result: dict[str, Any]) -> str:
    previous = f"v{result['previous']}" if result["previous"] else "(none)"
    return f"{result['model']}: {result['alias']} {previous} -> v{result['version']}"
