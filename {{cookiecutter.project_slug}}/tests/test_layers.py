"""The lifecycle layers hold: import-linter (pyproject.toml, `[tool.importlinter]`) passes on
the package, and fails when a lower layer imports a higher one or two modules import each other.
Pre-commit and CI run the same `lint-imports`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "{{ cookiecutter.package_name }}"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(source: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the package found in `source` (a copy of src/), with this project's
    contracts."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def source_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "src" / PACKAGE, tmp_path / PACKAGE)
    return tmp_path


def _add_import(source: Path, module: str, line: str) -> None:
    path = source / PACKAGE / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


def test_the_package_keeps_its_layers(source_copy):
    result = lint_imports(source_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_an_upward_import_is_refused(source_copy):
    """core may not import serving: the contract names the import."""
    _add_import(source_copy, "core/errors.py", f"from {PACKAGE}.serving import scorer  # noqa")
    result = lint_imports(source_copy)
    assert result.returncode != 0
    assert f"{PACKAGE}.core.errors -> {PACKAGE}.serving.scorer" in result.stdout


def test_a_cycle_inside_a_layer_is_refused(source_copy):
    """config must not import the model catalogue, which imports config (type checking aside)."""
    _add_import(source_copy, "core/config.py", f"from {PACKAGE}.core import models  # noqa")
    _add_import(source_copy, "core/models.py", f"from {PACKAGE}.core import config  # noqa")
    result = lint_imports(source_copy)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
