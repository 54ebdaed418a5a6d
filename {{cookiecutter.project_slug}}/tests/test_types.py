"""mypy (pyproject.toml, `[tool.mypy]`) holds on src/: the package type-checks clean, and a
field of a typed record used as the wrong type is refused where it is used. Pre-commit and CI
run the same `mypy`. One mypy run (about 30 s), so it is a CI test."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "{{ cookiecutter.package_name }}"
MYPY = Path(sys.executable).with_name("mypy")

MISUSE = f"""

from {PACKAGE}.core.records import GateReport


def _misread(report: GateReport) -> int:
    return report.holdout_rows + report.decision
"""


@pytest.mark.slow
def test_mypy_passes_on_the_package_and_refuses_a_misread_record(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "src" / PACKAGE, tmp_path / PACKAGE)
    errors = tmp_path / PACKAGE / "core" / "errors.py"
    errors.write_text(errors.read_text(encoding="utf-8") + MISUSE, encoding="utf-8")
    result = subprocess.run(
        [
            str(MYPY),
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            PACKAGE,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    reported = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert result.returncode == 1, result.stdout + result.stderr
    assert reported, result.stdout
    # Every error is the injected one: the package itself is clean.
    assert all(line.startswith(f"{PACKAGE}/core/errors.py:") for line in reported), reported
    assert any('Unsupported operand types for + ("int" and' in line for line in reported), reported
