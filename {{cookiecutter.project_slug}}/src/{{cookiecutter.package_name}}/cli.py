"""Command line: one subcommand per pipeline stage (DVC calls these; see dvc.yaml).

Thin on purpose: parse arguments, load params.yaml, call the stage, print a one-line summary.
Stage modules are imported inside each command so `--help` answers at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from {{ cookiecutter.package_name }}.core.errors import PipelineError

if TYPE_CHECKING:
    from {{ cookiecutter.package_name }}.core.config import Params
    from {{ cookiecutter.package_name }}.core.records import DriftReport

Summary = TypeVar("Summary")

app = typer.Typer(
    help="The pipeline stages behind `uv run dvc repro`, and the promotion commands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: the rich layout prints a `<bool>` type beside every flag, --help included.
    rich_markup_mode=None,
)

ParamsOption = Annotated[
    Path, typer.Option("--params", help="The params file to read.", dir_okay=False)
]


def _run(
    stage: Callable[[Params], Summary],
    params_file: Path,
    render: Callable[[Summary], str] | None = None,
) -> Summary:
    """Load params, run a stage, report: user errors as one message and exit code 1."""
    from {{ cookiecutter.package_name }}.core.config import load_params

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
    from {{ cookiecutter.package_name }}.pipeline.ingest import run_ingest

    _run(run_ingest, params)


@app.command()
def validate(params: ParamsOption = Path("params.yaml")) -> None:
    """Check the raw batch against schema.yaml; stop the pipeline on any broken rule."""
    from {{ cookiecutter.package_name }}.pipeline.validate import run_validate

    _run(run_validate, params)


@app.command()
def split(params: ParamsOption = Path("params.yaml")) -> None:
    """Split the validated batch into train and holdout sets."""
    from {{ cookiecutter.package_name }}.pipeline.split import run_split

    _run(run_split, params)


@app.command()
def train(params: ParamsOption = Path("params.yaml")) -> None:
    """Fit the floor, the baseline and the candidate (kinds from params.yaml, train:)."""
    from {{ cookiecutter.package_name }}.pipeline.train import run_train

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
    from {{ cookiecutter.package_name }}.core.artifacts import loaded_once
    from {{ cookiecutter.package_name }}.pipeline.evaluate import run_evaluate

    with loaded_once():  # evaluate and tracking share each model, hashed and loaded once
        _run(run_evaluate, params)
        if track:
            from {{ cookiecutter.package_name }}.promotion.tracking import run_track

            _run(run_track, params)


@app.command()
def metrics(params: ParamsOption = Path("params.yaml")) -> None:
    """Print the holdout metrics of every model with their intervals, one row per metric."""
    from {{ cookiecutter.package_name }}.core.records import Intervals, Scores, read_record
    from {{ cookiecutter.package_name }}.pipeline.evaluate import format_table

    def load(loaded: Params) -> str:
        paths = loaded.paths
        return format_table(
            read_record(paths.scores, Scores), read_record(paths.intervals, Intervals)
        )

    _run(load, params, render=str)


@app.command()
def track(params: ParamsOption = Path("params.yaml")) -> None:
    """Log the current models and metrics to MLflow again, outside the pipeline."""
    from {{ cookiecutter.package_name }}.promotion.tracking import run_track

    _run(run_track, params)


@app.command()
def gate(
    params: ParamsOption = Path("params.yaml"),
    write: Annotated[
        bool,
        typer.Option(
            "--write",
            help="Write reports/gate.{json,md} and exit 0 even on reject (the DVC stage).",
        ),
    ] = False,
) -> None:
    """Propose a model (candidate, else baseline) and check it; exit 1 when none may be promoted.

    Without --write it checks the current champion live and writes nothing.
    """
    from {{ cookiecutter.package_name }}.promotion.gate import render_markdown, run_gate

    if write:

        def stage(loaded: Params) -> dict[str, Any]:
            from {{ cookiecutter.package_name }}.promotion.preconditions import (
                require_project_params,
            )

            require_project_params(params, "write the gate report")
            return run_gate(loaded)

        _run(stage, params, render=render_markdown)
        return

    def live(loaded: Params) -> Any:
        from {{ cookiecutter.package_name }}.promotion.preconditions import (
            judge_now,
            require_project_params,
        )
        from {{ cookiecutter.package_name }}.promotion.registry import open_store

        require_project_params(params, "judge the models")
        return judge_now(loaded, open_store(loaded, "gate", must_exist=False), "judge the models")

    report = _run(live, params, render=lambda judged: render_markdown(judged.model_dump()))
    if report.decision != "promote":
        _fail(f"do not promote: failed {', '.join(report.failed_checks)}.")


@app.command()
def report(params: ParamsOption = Path("params.yaml")) -> None:
    """Write the model card (with figures) and the params and CLI reference for the docs site."""
    from {{ cookiecutter.package_name }}.pipeline.report import run_report as write_report

    def run_report(loaded: Params) -> Any:
        return write_report(loaded, app)

    _run(run_report, params)


class Alias(StrEnum):
    challenger = "challenger"
    champion = "champion"


OverrideOption = Annotated[
    bool,
    typer.Option(
        "--override",
        help="Do it although a check refuses (needs --reason; recorded on the version).",
    ),
]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why the override: recorded on the version.")
]


def _override(override: bool, reason: str | None) -> str | None:
    """The recorded reason of an override, or None; an override always needs a reason."""
    if reason is not None and not override:
        raise PipelineError("--reason goes with --override.")
    if override and not (reason and reason.strip()):
        raise PipelineError("--override needs --reason 'why', which is recorded on the version.")
    return reason.strip() if override and reason else None


@app.command()
def promote(
    params: ParamsOption = Path("params.yaml"),
    to: Annotated[
        Alias,
        typer.Option(help="challenger: register the gate's model; champion: serve a challenger."),
    ] = Alias.challenger,
    version: Annotated[
        int | None,
        typer.Option(
            help="With --to champion: the version to promote (default: the challenger).", min=1
        ),
    ] = None,
    override: OverrideOption = False,
    reason: ReasonOption = None,
) -> None:
    """Register the model the gate approves as `challenger`, or move `champion` to a version.

    When the gate rejects a run only because the champion cannot be compared (or is better),
    `--to champion --override --reason 'why'` registers this run's model and makes it champion,
    recording the reason.
    """

    def run_promote(loaded: Params) -> dict[str, Any]:
        from {{ cookiecutter.package_name }}.promotion import commands
        from {{ cookiecutter.package_name }}.promotion.preconditions import (
            require_project_params,
        )

        require_project_params(params, "promote")
        recorded = _override(override, reason)
        if to is Alias.champion:
            return commands.promote_champion(loaded, version, recorded)
        if version is not None:
            raise PipelineError("--version goes with --to champion.")
        return commands.promote_challenger(loaded, recorded)

    _run(run_promote, params, render=_describe_move)


@app.command()
def rollback(
    params: ParamsOption = Path("params.yaml"),
    to: Annotated[
        int | None, typer.Option("--to", help="Give champion to this version.", min=1)
    ] = None,
    override: OverrideOption = False,
    reason: ReasonOption = None,
) -> None:
    """Move `champion` back to the version it replaced (or to --to VERSION)."""

    def run_rollback(loaded: Params) -> dict[str, Any]:
        from {{ cookiecutter.package_name }}.promotion.commands import roll_back

        return roll_back(loaded, to, _override(override, reason))

    _run(run_rollback, params, render=_describe_move)


@app.command()
def models(params: ParamsOption = Path("params.yaml")) -> None:
    """List registered versions: aliases, kind, gate outcome, the version each replaced."""
    from {{ cookiecutter.package_name }}.promotion.commands import models as list_models

    def render(rows: list[dict[str, Any]]) -> str:
        if not rows:
            return "no registered versions yet: `promote` registers the first one."
        header = ("version", "aliases", "kind", "gate", "replaced", "git commit", "override")
        table = [header] + [
            (
                str(row["version"]),
                ",".join(row["aliases"]) or "-",
                row["kind"],
                row["gate"],
                f"v{row['previous']}" if row["previous"] else "-",
                row["git_commit"] or "-",
                row["override"] or "-",
            )
            for row in rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
            for line in table
        )

    _run(list_models, params, render=render)


@app.command()
def export(
    params: ParamsOption = Path("params.yaml"),
    alias: Annotated[
        Alias | None, typer.Option(help="Pin the registered version holding this alias.")
    ] = None,
    version: Annotated[int | None, typer.Option(help="Pin this registered version.", min=1)] = None,
    proposed: Annotated[
        bool,
        typer.Option(
            "--proposed", help="Pin the model reports/gate.json approved (no registry needed)."
        ),
    ] = False,
) -> None:
    """Pin one model into BentoML's model store for `bentoml serve` and `bentoml build`."""

    def run(loaded: Params) -> dict[str, Any]:
        from {{ cookiecutter.package_name }}.promotion.preconditions import (
            require_project_params,
        )
        from {{ cookiecutter.package_name }}.serving.export import run_export

        if sum((alias is not None, version is not None, proposed)) != 1:
            raise PipelineError("choose exactly one of --alias NAME, --version N and --proposed.")
        require_project_params(params, "export")
        return run_export(loaded, alias.value if alias else None, version, proposed)

    def render(result: dict[str, Any]) -> str:
        fallback = result["fallback"] or "none"
        return (
            f"exported {result['tag']}: model version {result['model_version']} "
            f"({result['model_kind']}, fallback {fallback}) from {result['source']}, "
            f"into {result['store']}.\n"
            "Serve it with `make serve`, package it with `make bento` (docs/serving.md)."
        )

    _run(run, params, render=render)


@app.command()
def predict(
    source: Annotated[
        Path,
        typer.Option("--input", help="Rows to score: a .csv or .parquet file.", dir_okay=False),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", help="Where to write them with predictions (.csv/.parquet).", dir_okay=False
        ),
    ],
    rejected: Annotated[
        Path | None,
        typer.Option(
            help="Rows the contract refuses (default: <output>.rejected.csv).", dir_okay=False
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="BentoML model tag (default: the last export).")
    ] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Score a file offline with the exported model, in chunks; refused rows go aside."""

    def run(loaded: Params) -> dict[str, Any]:
        from {{ cookiecutter.package_name }}.serving.predict import run_predict

        return run_predict(loaded, source, output, rejected, model)

    def render(result: dict[str, Any]) -> str:
        line = (
            f"scored {result['scored']} of {result['rows']} rows with model version "
            f"{result['model_version']} -> {result['output']}"
        )
        if result["rejected"]:
            line += f"\n{result['rejected']} rows refused, with reasons: {result['rejected_file']}"
        if result["fallback_rows"]:
            line += f"\n{result['fallback_rows']} rows were scored by the fallback model"
        from {{ cookiecutter.package_name }}.serving.predict import (
            describe_outside,
            describe_unseen,
        )

        return "\n".join(
            [
                line,
                *describe_unseen(result["unseen_categories"]),
                *describe_outside(result["outside_observed_range"]),
            ]
        )

    _run(run, params, render=render)


@app.command()
def drift(
    current: Annotated[
        Path,
        typer.Option(
            "--current",
            help="The batch: .csv/.parquet feature rows, or the service's prediction log (.jsonl).",
            dir_okay=False,
        ),
    ],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Compare a batch with the training data; write reports/drift.{json,html}.

    Exit code 0: no drift; 1: drift (or an error, with no report); 2: the batch has fewer than
    monitor.min_rows rows, so no verdict.
    """

    def run(loaded: Params) -> DriftReport:
        from {{ cookiecutter.package_name }}.monitoring.drift import (
            TooFewRowsError,
            run_drift,
        )

        try:
            return run_drift(loaded, current)
        except TooFewRowsError as error:
            typer.echo(f"no verdict: {error}", err=True)
            raise typer.Exit(code=2) from None

    def render(report: DriftReport) -> str:
        drifted = ", ".join(report.drifted_features) or "none"
        lines = [
            f"{report.rows} rows; drifted features ({report.drifted_share:.0%}, carrying "
            f"{report.weighted_share:.1%} of the importance): {drifted}"
        ]
        lines.extend(f"drift: {reason}" for reason in report.reasons)
        quality = report.quality
        if quality.failed:
            lines.append(
                f"data quality failed: missing columns {quality.missing_columns or 'none'}, "
                f"{quality.rows_breaking_the_contract} rows break the contract, missing "
                f"values rose in {list(quality.missing_values_rose) or 'none'}"
            )
        return "\n".join(lines)

    report = _run(run, params, render=render)
    if report.drift:
        _fail("drift beyond the thresholds of params.yaml (monitor:); see reports/drift.html.")


def _describe_move(result: dict[str, Any]) -> str:
    previous = f"v{result['previous']}" if result["previous"] else "(none)"
    line = f"{result['model']}: {result['alias']} {previous} -> v{result['version']}"
    if result.get("reused"):
        line += " (this artifact was already registered)"
    if result.get("override"):
        line += " (override recorded)"
    if result.get("note"):
        line += f"\nnote: {result['note']}"
    if result.get("history"):
        line += f"; champion history, newest first: {result['history']}"
    return line
