"""Time and peak memory of the data stages (ingest, validate, split) on a large CSV.

    uv run python benchmarks/data_stages.py [--rows 2330000] [--project DIR] [--keep DIR]

Bakes the defaults (or uses --project, an installed bake), writes a CSV of --rows rows with
benchmarks/make_big_csv.py (2.33 M rows is about 200 MB: 10 numeric and 3 categorical columns, a
binary target), points params.yaml at it and runs each stage as `dvc repro` would, in its own
process. For each it prints the wall time and the peak resident memory of that process
(getrusage of a wrapper's children, so each stage is measured alone). `validate` runs twice: the
first run infers the contract, the second checks the batch against the committed one, which is
what every later run does.
Targets: every stage's peak RSS well under 2 GB, each stage in seconds.
Figures, not a test: nothing fails on a slow run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
GENERATOR = Path(__file__).resolve().parent / "make_big_csv.py"
SOURCE = "data/external/big.csv"
# Runs the command given as arguments and prints its peak RSS (KiB on Linux) as the last line.
WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(code)\n"
)


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def measured(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB and the output of one command run in its own process."""
    start = time.perf_counter()
    output = run([sys.executable, "-c", WRAPPER, *command], cwd, env)
    seconds = time.perf_counter() - start
    *lines, peak_kib = output.rstrip("\n").split("\n")
    return seconds, int(peak_kib) / 1024, "\n".join(lines)


def bake(scratch: Path, env: dict[str, str]) -> Path:
    config = scratch / "cookiecutter-config.yaml"
    config.write_text(f"replay_dir: {scratch / 'replay'}\ncookiecutters_dir: {scratch / 'cc'}\n")
    project = Path(
        cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(scratch), config_file=str(config))
    )
    run(["uv", "sync", "--locked", "--compile-bytecode", "--quiet"], project, env)
    return project


def point_params_at(project: Path) -> None:
    """data.source -> the big file, target churned: the one edit a user makes."""
    path = project / "params.yaml"
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(  source: ).*$", rf"\g<1>{SOURCE}", text)
    text = re.sub(r"(?m)^(  target: )\S+", r"\g<1>churned", text)
    path.write_text(text, encoding="utf-8")


def parse_arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", type=int, default=2_330_000)
    parser.add_argument("--project", type=Path, help="an installed bake to use instead of baking")
    parser.add_argument("--keep", type=Path, help="bake into this directory and keep it")
    return parser.parse_args()


def large_project(
    args: argparse.Namespace, prefix: str
) -> tuple[Path, Path, str, str, dict[str, str]]:
    """(scratch, project, its python, its package, env): a bake pointed at a fresh large CSV."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("VIRTUAL_ENV", None)
    scratch = args.keep or Path(tempfile.mkdtemp(prefix=prefix))
    scratch.mkdir(parents=True, exist_ok=True)
    project = args.project.resolve() if args.project else bake(scratch, env)
    python = str(project / ".venv" / "bin" / "python")
    package = next((project / "src").iterdir()).name
    print(run([python, str(GENERATOR), "--rows", str(args.rows), "--out", SOURCE], project, env))
    os.sync()  # flush the new file first: its write-back would otherwise slow down ingest
    point_params_at(project)
    (project / "schema.yaml").unlink(missing_ok=True)
    return scratch, project, python, package, env


def main() -> None:
    args = parse_arguments(__doc__.splitlines()[0])
    scratch, project, python, package, env = large_project(args, "ml-template-data-bench-")

    size = (project / SOURCE).stat().st_size / 1e6
    print(f"data stages on {args.rows} rows ({size:.0f} MB CSV), {os.cpu_count()} cores\n")
    print(f"  {'stage':<28} {'wall s':>7} {'peak RSS MB':>12}")
    for label, stage in (
        ("ingest", "ingest"),
        ("validate (infers contract)", "validate"),
        ("validate (committed contract)", "validate"),
        ("split", "split"),
    ):
        seconds, peak, _ = measured([python, "-m", package, stage], project, env)
        print(f"  {label:<28} {seconds:7.2f} {peak:12.0f}")
    report = project / "reports" / "validation.json"
    if report.is_file():
        warnings = json.loads(report.read_text(encoding="utf-8")).get("warnings", [])
        print(f"\n  validation warnings: {len(warnings)}")
        for warning in warnings:
            print(f"    {warning['column']}: {warning['kind']}")
    if not args.keep and not args.project:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
