"""The documentation pages the pipeline writes, so the docs site always shows the latest run.

- `docs/model-card.md`: what was trained on what, how it scored (every metric with its
  interval), what the gate decided and why, the data warnings, and the plots as PNG images, so
  the page renders offline (DVC's plots page loads Vega from a CDN);
- `docs/reference/params.md`: every setting of params.yaml, with the file's own comments;
- `docs/reference/cli.md`: every CLI command and option, from the commands' own help;
- `docs/reference/records.md`: every JSON file one stage hands to another, from its record.

It is the `report` stage of dvc.yaml: it reruns when a run's results, params.yaml or the CLI
change. matplotlib is imported here only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import BaseModel

from {{ cookiecutter.package_name }}.core.artifacts import (
    MANIFEST_FILE,
    ModelManifest,
    load_manifest,
)
from {{ cookiecutter.package_name }}.core.config import PARAMS_FILE, Params
from {{ cookiecutter.package_name }}.core.records import (
    RECORDS,
    GateReport,
    Improvement,
    Intervals,
    MetricInterval,
    Scores,
    SplitDefinition,
    ValidationReport,
    read_record,
    write_text,
)
from {{ cookiecutter.package_name }}.core.records import reference as records_reference

if TYPE_CHECKING:
    import typer

PKG = "{{ cookiecutter.package_name }}"
NOTES = "model-card-notes.md"  # written by the team; the card links it


def run_report(params: Params, cli: typer.Typer) -> dict[str, Any]:
    """Stage `report`: the model card with its figures, and the reference pages (`cli` is the
    command-line app, passed in so that this stage does not import the CLI that runs it)."""
    figures = write_figures(params)
    write_text(model_card(params, figures), params.paths.model_card)
    reference = params.paths.reference
    write_text(params_reference(PARAMS_FILE.read_text(encoding="utf-8")), reference / "params.md")
    write_text(cli_reference(cli), reference / "cli.md")
    write_text(records_reference(documented_records()), reference / "records.md")
    return {"model_card": str(params.paths.model_card), "figures": len(figures)}


def documented_records() -> dict[str, type[BaseModel]]:
    """Every file one stage hands to another, by its default path: core/records.py's RECORDS
    and the model manifest (core/artifacts.py, which checks the models' bytes as it loads)."""
    return {**RECORDS, f"models/{MANIFEST_FILE}": ModelManifest}


def _percent(confidence: float) -> str:
    return f"{confidence:.0%}"


def metrics_table(scores: Scores, intervals: Intervals) -> list[str]:
    """Every metric of every model, with intervals, and the paired comparisons."""
    lines = [
        "| metric | floor | baseline | candidate | candidate vs baseline | baseline vs floor |",
        "|---|---|---|---|---|---|",
    ]

    def cell(entry: MetricInterval) -> str:
        return f"{entry.value:.4f} [{entry.lower:.4f}, {entry.upper:.4f}]"

    def signed(entry: Improvement) -> str:
        return f"{entry.improvement:+.4f} [{entry.lower:+.4f}, {entry.upper:+.4f}]"

    for metric, improvement in intervals.candidate_vs_baseline.items():
        name = f"**{metric}**" if metric == intervals.primary_metric else metric
        lines.append(
            f"| {name} | {scores.root['floor'][metric]:.4f} | {cell(intervals.baseline[metric])} "
            f"| {cell(intervals.candidate[metric])} | {signed(improvement)} | "
            f"{signed(intervals.baseline_vs_floor[metric])} |"
        )
    return lines


def model_card(params: Params, figures: dict[str, str]) -> str:
    manifest = load_manifest(params.paths.models)
    intervals = read_record(params.paths.intervals, Intervals)
    scores = read_record(params.paths.scores, Scores)
    gate = read_record(params.paths.gate_report, GateReport)
    validation = read_record(params.paths.validation_report, ValidationReport)
    split = read_record(params.paths.split_report, SplitDefinition)
    proposed = gate.proposed_model
    kinds = ", ".join(f"{role}: `{entry.kind}`" for role, entry in manifest.models.items())
    verdict = (
        f"**promote the {gate.proposed}** (`{proposed.kind if proposed else None}`)"
        if gate.decision == "promote"
        else f"**do not promote** (failed: {', '.join(gate.failed_checks)})"
    )
    lines = [
        "# Model card",
        "",
        "Written by the `report` stage of `dvc repro` from the latest run: do not edit it by hand "
        f"(the team's own notes go in [{NOTES}]({NOTES})).",
        "",
        "## The model",
        "",
        "| | |",
        "|---|---|",
        f"| task | {manifest.task.replace('_', ' ')} |",
        f"| target | `{manifest.target}`"
        + (f", classes {', '.join(f'`{c}`' for c in manifest.classes)}" if manifest.classes else "")
        + (
            f", positive class `{manifest.positive_class}`"
            if manifest.positive_class is not None
            else ""
        )
        + " |",
        f"| features | {len(manifest.numeric)} numeric, {len(manifest.categorical)} categorical |",
        f"| models | {kinds} |",
        f"| training rows | {manifest.train_rows} |",
        f"| holdout rows | {intervals.holdout_rows} |",
        f"| split | `{split.method}` (fingerprint `{split.fingerprint[:12]}`) |",
        f"| data contract | `schema.yaml`, SHA-256 `{manifest.contract_sha256[:12]}` |",
        f"| gate | {verdict} |",
        "",
        gate.explanation,
        "",
        "## Holdout metrics",
        "",
        f"{_percent(intervals.confidence)} bootstrap intervals "
        f"({intervals.bootstrap_samples} resamples); comparisons are paired and oriented so "
        "that positive means better. The primary metric is in bold.",
        "",
        *metrics_table(scores, intervals),
        "",
        "## The gate",
        "",
        *_gate_rows(gate),
        "",
        "## Data warnings",
        "",
    ]
    warnings = validation.warnings
    lines += [f"- `{w.column}` ({w.kind}): {w.message}" for w in warnings]
    if not warnings:
        lines.append("None in the last validated batch.")
    lines += ["", "## Figures", ""]
    for title, name in figures.items():
        lines += [f"### {title}", "", f"![{title}](img/{name})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _gate_rows(gate: GateReport) -> list[str]:
    rows = ["| check | result | measured |", "|---|---|---|"]
    for check in gate.checks:
        detail = str(check.detail).splitlines()[0].replace("|", "/")
        rows.append(f"| {check.name} | {check.status} | {detail} |")
    return rows


def write_figures(params: Params) -> dict[str, str]:
    """The plot data of the evaluate stage as PNG images; title -> file name in paths.figures."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    plots, directory = params.paths.plots, params.paths.figures
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.png"):
        old.unlink()
    written: dict[str, str] = {}

    def save(figure: Any, title: str, name: str) -> None:
        figure.tight_layout()
        figure.savefig(directory / name, dpi=110, metadata={"Software": None})
        plt.close(figure)
        written[title] = name

    for curve, x, y, title in (
        ("roc", "fpr", "tpr", "ROC curve (holdout)"),
        ("precision_recall", "recall", "precision", "Precision-recall curve (holdout)"),
    ):
        if (plots / curve).is_dir():
            figure, axes = plt.subplots(figsize=(5, 4))
            for path in sorted((plots / curve).glob("*.csv")):
                frame = pd.read_csv(path)
                axes.plot(frame[x], frame[y], label=path.stem)
            axes.set(xlabel=x, ylabel=y, title=title)
            axes.legend()
            save(figure, title, f"{curve}.png")
    if (plots / "confusion.csv").is_file():
        frame = pd.read_csv(plots / "confusion.csv").astype(str)
        table = pd.crosstab(frame["actual"], frame["predicted"])
        figure, axes = plt.subplots(figsize=(5, 4))
        axes.imshow(table.to_numpy(), cmap="Blues")
        axes.set_xticks(range(len(table.columns)), table.columns, rotation=45)
        axes.set_yticks(range(len(table.index)), table.index)
        for (row, column), value in pd.DataFrame(table.to_numpy()).stack().items():
            axes.text(column, row, str(value), ha="center", va="center")
        axes.set(xlabel="predicted", ylabel="actual", title="Confusion matrix of the candidate")
        save(figure, "Confusion matrix of the candidate (holdout)", "confusion.png")
    if (plots / "residuals.csv").is_file():
        frame = pd.read_csv(plots / "residuals.csv")
        figure, axes = plt.subplots(figsize=(5, 4))
        axes.scatter(frame["actual"], frame["predicted"], s=8, alpha=0.6)
        both = frame[["actual", "predicted"]]
        low, high = both.min().min(), both.max().max()
        axes.plot([low, high], [low, high], color="grey", linewidth=1)
        axes.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
        save(figure, "Predicted vs actual (holdout)", "residuals.png")
    if (plots / "importance.csv").is_file():
        frame = pd.read_csv(plots / "importance.csv").head(20).iloc[::-1]
        figure, axes = plt.subplots(figsize=(6, max(2.5, 0.3 * len(frame))))
        axes.barh(frame["feature"].astype(str), frame["importance"])
        axes.set(xlabel="importance", title="Feature importance of the candidate (top 20)")
        save(figure, "Feature importance of the candidate", "importance.png")
    return written


def params_reference(text: str) -> str:
    """params.yaml, one section per heading, with the file's own comments as the explanation."""
    lines = text.splitlines()
    sections: list[tuple[str, list[str]]] = []
    preamble: list[str] = []
    pending: list[str] = []
    for line in lines:
        if line and not line.startswith((" ", "#")) and ":" in line:
            sections.append((line.split(":", 1)[0], [*pending, line]))
            pending = []
        elif line.startswith("#") and (not sections or not line.startswith("  ")):
            if sections and sections[-1][1] and not sections[-1][1][-1].strip():
                pending.append(line)
            elif sections:
                sections[-1][1].append(line)
            else:
                preamble.append(line)
        elif sections:
            sections[-1][1].append(line)
    out = [
        "# Settings reference (params.yaml)",
        "",
        "Every knob of the project is in `params.yaml`, read only by `config.py`, which checks it "
        "(a typo or an out-of-range value stops the pipeline naming the key). DVC records which "
        "stages read which settings (`dvc.yaml`), so a change reruns exactly those stages. This "
        "page is written from the file itself by the `report` stage.",
        "",
        *(line.lstrip("# ") for line in preamble if line.strip("# ")),
    ]
    for name, body in sections:
        out += ["", f"## `{name}`", "", "```yaml", *[line.rstrip() for line in body], "```"]
    return "\n".join(out).rstrip() + "\n"


def cli_reference(cli: typer.Typer) -> str:
    """Every command of the CLI with its options, from the commands' own help texts."""
    import typer.main
    from typer.core import TyperGroup, TyperOption

    group = typer.main.get_command(cli)
    if not isinstance(group, TyperGroup):  # an app of one command is that command
        raise TypeError(f"{cli!r} has no subcommands to document")
    context = group.context_class(group, info_name=PKG)
    out = [
        "# Command reference",
        "",
        f"`uv run {PKG} COMMAND --help` prints the same. Written from the CLI itself by the "
        "`report` stage.",
    ]
    for name in group.list_commands(context):
        command = group.commands[name]
        out += ["", f"## `{name}`", "", (command.help or "").strip(), ""]
        options = [param for param in command.params if isinstance(param, TyperOption)]
        if options:
            out += ["| option | default | what |", "|---|---|---|"]
            for option in options:
                flags = " / ".join(f"`{flag}`" for flag in [*option.opts, *option.secondary_opts])
                default = "" if option.default in (None, False) else f"`{option.default}`"
                help_text = (option.help or "").replace("|", "/")
                out.append(f"| {flags} | {default} | {help_text} |")
    return "\n".join(out).rstrip() + "\n"
