"""Print the figures the template is held to, measured on this machine in one run.

    uv run python benchmarks/pipeline.py [--repeats 3] [--keep DIR]

Bakes the defaults, then measures: bake time, `uv sync --locked` with a warm cache (and with
--compile-bytecode where PYTHONDONTWRITEBYTECODE is set, as on CI machines), a full
`dvc repro`, a no-op `dvc repro`, and, per stage, how much of its wall time goes to importing
libraries (python -X importtime); then the registry commands a user runs by hand (promote,
promote --to champion, models, rollback), each a fresh process as at a terminal.
Targets: bake < 2 s, full repro < 30 s, no-op < 3 s; models and rollback < 2 s, promote < 5 s.
Figures, not a test: shared machines are noisy, so nothing here fails on a slow run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
# `evaluate` includes the MLflow logging.
# The stage commands as dvc.yaml runs them (`gate --write` exits 0 on "reject").
STAGES = {
    "ingest": ["ingest"],
    "validate": ["validate"],
    "split": ["split"],
    "train": ["train"],
    "evaluate": ["evaluate"],
    "gate": ["gate", "--write"],
}
TARGETS = {
    "bake": 2.0,
    "full dvc repro": 30.0,
    "no-op dvc repro": 3.0,
    "promote": 5.0,
    "promote --to champion": 5.0,
    "models": 2.0,
    "rollback": 2.0,
}
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)")


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, result.stdout + result.stderr


def bake(output: Path, config: Path) -> Path:
    return Path(
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            output_dir=str(output),
            config_file=str(config),
            overwrite_if_exists=True,
        )
    )


def import_seconds(stderr: str) -> float:
    """Total of the top-level imports' cumulative times in -X importtime output."""
    total_us = 0
    for line in stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match and match.group(2) == "":
            total_us += int(match.group(1))
    return total_us / 1e6


def registry_commands(project: Path, package: str, env: dict[str, str]) -> dict[str, float]:
    """Wall time of each registry command, run through the installed entry point."""
    entry = str(project / ".venv" / "bin" / package)
    figures: dict[str, float] = {}
    figures["promote"], _ = timed([entry, "promote"], project, env)
    champion = [entry, "promote", "--to", "champion"]
    figures["promote --to champion"], _ = timed(champion, project, env)
    # A second champion to roll back from: the baseline retrained with more iterations.
    params = project / "params.yaml"
    text = params.read_text(encoding="utf-8")
    params.write_text(text.replace("max_iter: 1000", "max_iter: 1100", 1), encoding="utf-8")
    timed(["uv", "run", "dvc", "repro"], project, env)
    timed([entry, "promote"], project, env)
    timed(champion, project, env)
    figures["models"] = statistics.median(
        timed([entry, "models"], project, env)[0] for _ in range(3)
    )
    figures["rollback"], _ = timed([entry, "rollback"], project, env)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="bakes to time")
    parser.add_argument("--keep", type=Path, help="bake into this directory and keep it")
    args = parser.parse_args()
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="ml-template-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    config = scratch / "cookiecutter-config.yaml"
    config.write_text(f"replay_dir: {scratch / 'replay'}\ncookiecutters_dir: {scratch / 'cc'}\n")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "BENTOML_DO_NOT_TRACK": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("VIRTUAL_ENV", None)
    figures: dict[str, float] = {}

    bake_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        project = bake(scratch, config)
        bake_times.append(time.perf_counter() - start)
    figures["bake"] = statistics.median(bake_times)

    timed(["uv", "sync", "--locked", "--quiet"], project, env)  # fills the cache if cold
    shutil.rmtree(project / ".venv")
    figures["uv sync --locked (warm cache)"], _ = timed(["uv", "sync", "--locked"], project, env)
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        # Python will not cache bytecode here: compile at install, as the generated README advises.
        shutil.rmtree(project / ".venv")
        figures["uv sync --locked --compile-bytecode"], _ = timed(
            ["uv", "sync", "--locked", "--compile-bytecode"], project, env
        )

    for git in (
        ["init", "-q"],
        ["add", "-A"],
        [
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.invalid",
            "commit",
            "-qm",
            "bake",
        ],
    ):
        timed(["git", *git], project, env)
    figures["full dvc repro"], _ = timed(["uv", "run", "dvc", "repro"], project, env)
    figures["no-op dvc repro"], out = timed(["uv", "run", "dvc", "repro"], project, env)
    if "Running stage" in out:
        print("warning: the second dvc repro ran a stage:\n" + out)

    package = next((project / "src").iterdir()).name
    figures.update(registry_commands(project, package, env))
    python = project / ".venv" / "bin" / "python"
    print(f"\nml-template benchmark ({os.cpu_count()} cores), project in {project}\n")
    for name, seconds in figures.items():
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            verdict = f"  (target < {target:g} s: {'met' if seconds < target else 'MISSED'})"
        print(f"  {name:<38} {seconds:6.2f} s{verdict}")
    print("\n  stage       wall s   import s   import share")
    wall_total = import_total = 0.0
    for stage, arguments in STAGES.items():
        command = [str(python), "-X", "importtime", "-m", package, *arguments]
        wall, output = timed(command, project, env)
        imports = import_seconds(output)
        wall_total += wall
        import_total += imports
        print(f"  {stage:<10} {wall:7.2f}   {imports:7.2f}    {imports / wall:6.0%}")
    share = import_total / wall_total
    print(f"  {'all':<10} {wall_total:7.2f}   {import_total:7.2f}    {share:6.0%}")
    print("\n  (stage rows rerun each stage with -X importtime, which adds its own overhead)")
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
