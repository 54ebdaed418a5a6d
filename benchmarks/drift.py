"""How long the drift check takes on a 100,000-row batch, with its HTML report.

    uv run python benchmarks/drift.py [--project DIR] [--rows 100000]

Bakes the defaults (or uses a baked project after `dvc repro`), writes a batch of --rows rows
resampled from the training split (each numeric value jittered within its observed range, so it
is a plausible batch from the same distribution), and times `uv run <package> drift --current
batch.csv` as a user runs it (a fresh process: imports included). Then the import time of
scipy.stats (the tests' library) and its share of the run. Target: under 10 s on a 2-core
machine. Figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]


def run(command: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a baked project after `dvc repro`")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    env = {**os.environ}
    env.pop("VIRTUAL_ENV", None)
    scratch = Path(tempfile.mkdtemp(prefix="drift-bench-"))
    project = args.project
    if project is None:
        from cookiecutter.main import cookiecutter

        project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(scratch)))
        run(["git", "init", "-q"], project, env)
        run(["uv", "sync", "--locked", "--compile-bytecode"], project, env)
        run(["uv", "run", "dvc", "repro"], project, env)
    answers = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]
    package = answers["package_name"]
    batch = scratch / "batch.csv"
    make = (
        "import numpy as np, pandas as pd, sys\n"
        "train = pd.read_parquet('data/processed/train.parquet').drop(columns=['target'])\n"
        "rng = np.random.default_rng(0)\n"
        f"rows = train.sample({args.rows}, replace=True, random_state=0).reset_index(drop=True)\n"
        "for c in rows.select_dtypes('number'):\n"
        "    noise = rng.normal(0, 0.01 * (rows[c].std() or 1), len(rows))\n"
        "    rows[c] = (rows[c] + noise).clip(train[c].min(), train[c].max())\n"
        f"rows.to_csv({str(batch)!r}, index=False)\n"
    )
    run(["uv", "run", "python", "-c", make], project, env)
    started = time.perf_counter()
    output = run(["uv", "run", package, "drift", "--current", str(batch)], project, env, False)
    total = time.perf_counter() - started
    imports = run(
        ["uv", "run", "python", "-X", "importtime", "-c", "import scipy.stats"], project, env
    )
    scipy_us = max(
        (int(m[1]) for m in re.finditer(r"\|\s+(\d+) \| scipy\.stats$", imports, re.M)),
        default=0,
    )
    report = json.loads((project / "reports/drift.json").read_text())
    print(f"drift check of {args.rows} rows ({batch.stat().st_size / 1e6:.1f} MB CSV)")
    print(f"  total (fresh process, HTML and JSON written): {total:.2f} s (target < 10 s)")
    print(f"  import scipy.stats: {scipy_us / 1e6:.2f} s ({scipy_us / 1e6 / total:.0%} of the run)")
    print(
        f"  verdict: {'drift' if report['drift'] else 'no drift'}; last line: "
        f"{output.strip().splitlines()[-1]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
