"""The command line: discoverable stages, and user errors as one line without a traceback."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from {{ cookiecutter.package_name }}.cli import app

STAGES = ("ingest", "validate", "split", "train", "evaluate", "track")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def listed_commands(help_text: str) -> list[str]:
    """The names in the "Commands:" section of a help screen."""
    section = help_text.split("Commands:", 1)[1]
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ")]


def test_help_lists_every_stage_and_operation():
    """Every operation, and every stage of dvc.yaml under its own name."""
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    commands = listed_commands(result.stdout)
    pipeline = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    for command in (*STAGES, *pipeline, "gate", "promote", "rollback", "models", "metrics"):
        assert command in commands


def test_help_screens_show_no_type_noise():
    """Rich help printed `<bool>` beside every flag, --help included."""
    for args in (["--help"], ["evaluate", "--help"], ["promote", "--help"]):
        assert "<bool>" not in runner.invoke(app, args).stdout


def test_every_stage_takes_a_params_option():
    for stage in STAGES:
        result = runner.invoke(app, [stage, "--help"])
        assert result.exit_code == 0
        assert "--params" in result.stdout


def test_bad_params_file_exits_1_with_one_message(settings_for, params_file):
    settings = settings_for("regression")
    settings["split"]["test_size"] = 0
    path = params_file(settings)
    result = runner.invoke(app, ["ingest", "--params", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "split.test_size" in result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_missing_params_file_is_a_user_error(tmp_path):
    result = runner.invoke(app, ["validate", "--params", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "error:" in result.stderr
    assert "not found" in result.stderr


def test_stage_before_its_inputs_exist_names_the_fix(project):
    """Running split before ingest points at the earlier stages, not at a FileNotFoundError."""
    result = runner.invoke(app, ["split", "--params", "params.yaml"])
    assert result.exit_code == 1
    assert "run the earlier stages" in result.stderr


def test_success_prints_a_one_line_summary(project):
    result = runner.invoke(app, ["ingest"])
    assert result.exit_code == 0, result.output
    assert result.stdout == 'ingest: {"rows": 300, "columns": 5}\n'
