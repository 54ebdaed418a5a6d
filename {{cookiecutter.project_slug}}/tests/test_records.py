"""The typed hand-offs (core/records.py): a file of another shape is one message naming the
field, and the generated reference describes every field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, RootModel
from typer.testing import CliRunner

from {{ cookiecutter.package_name }}.cli import app
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.records import (
    GateReport,
    Scores,
    Summary,
    _models_in,
    read_record,
    reference,
    write_record,
)
from {{ cookiecutter.package_name }}.pipeline.report import documented_records

GATE = {
    "decision": "promote",
    "proposed": "candidate",
    "proposed_model": {"role": "candidate", "kind": "lightgbm", "file": "m", "sha256": "ab"},
    "explanation": "",
    "primary_metric": "roc_auc",
    "holdout_rows": 100,
    "confidence": 0.95,
    "latency_measure": "CPU",
    "checks": [{"name": "x", "status": "pass", "value": 1, "threshold": 0, "detail": ""}],
    "failed_checks": [],
    "warnings": [],
    "inputs": {},
    "rules": {},
}


def test_a_record_survives_its_file(tmp_path):
    path = tmp_path / "gate.json"
    write_record(GateReport.model_validate(GATE), path)
    assert read_record(path, GateReport) == GateReport.model_validate(GATE)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ({"decision": "maybe"}, "decision"),
        ({"proposed_model": {"role": "champion"}}, "proposed_model.role"),
        ({"verdict": "promote"}, "verdict"),
    ],
)
def test_a_hand_edited_record_is_one_message_naming_the_field(tmp_path, edit, field):
    path = tmp_path / "gate.json"
    path.write_text(json.dumps({**GATE, **edit}), encoding="utf-8")
    with pytest.raises(PipelineError) as caught:
        read_record(path, GateReport)
    message = str(caught.value)
    assert f"is not what the pipeline writes ({field}" in message
    assert "uv run dvc repro" in message


def _every_model() -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = set()
    pending = list(documented_records().values())
    while pending:
        model = pending.pop()
        if model not in found:
            found.add(model)
            for field in model.model_fields.values():
                pending += _models_in(field.annotation)
    return found


def test_the_reference_describes_every_record_and_field():
    text = reference(documented_records())
    for path, model in documented_records().items():
        assert f"## `{path}` ({model.__name__})" in text
    nested = _every_model() - set(documented_records().values())
    assert {model.__name__ for model in nested} >= {"ProposedModel", "LoggedRun", "DataWarning"}
    for model in nested:
        assert f"## `{model.__name__}`" in text, model.__name__
    for model in _every_model():
        if issubclass(model, RootModel):
            continue
        for name, field in model.model_fields.items():
            assert f"| `{field.alias or name}` |" in text, (model.__name__, name)
    assert "The file is one mapping: `dict[str, dict[str, float]]`." in text  # scores.json
    assert "| `schema` | `str` |" in text  # validation.json's key, not the attribute's name


def test_every_stage_output_is_a_record():
    """Every JSON file a stage of dvc.yaml writes is described by a record (or is a plot)."""
    import yaml

    stages = yaml.safe_load((Path(__file__).parents[1] / "dvc.yaml").read_text())["stages"]
    defaults = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())["paths"]
    written = set()
    for stage in stages.values():
        for entry in [*stage.get("outs", []), *stage.get("metrics", [])]:
            name = next(iter(entry)) if isinstance(entry, dict) else entry
            for key, value in defaults.items():
                name = name.replace("${paths." + key + "}", str(value))
            if name.endswith(".json"):
                written.add(name)
    assert written <= set(documented_records()), written - set(documented_records())


def test_metrics_files_keep_the_shape_dvc_reads(tmp_path):
    """scores.json and summary.json are `dvc metrics` files: their keys are the data's (roles,
    the primary metric), and a record writes them back byte for byte."""
    scores = {"floor": {"roc_auc": 0.5}, "candidate": {"roc_auc": 0.91, "f1": 0.8}}
    summary = {
        "roc_auc": {
            "floor": 0.5,
            "baseline": 0.9,
            "candidate": 0.91,
            "candidate_vs_baseline": {"improvement": 0.01, "lower": -0.01, "upper": 0.03},
            "baseline_vs_floor": {"improvement": 0.4, "lower": 0.35, "upper": 0.45},
        },
        "holdout_rows": 127,
    }
    for model, payload in ((Scores, scores), (Summary, summary)):
        path = tmp_path / "metrics.json"
        text = json.dumps(payload, indent=2) + "\n"
        path.write_text(text, encoding="utf-8")
        write_record(read_record(path, model), path)
        assert path.read_text(encoding="utf-8") == text
    path.write_text(json.dumps({"candidate": {"roc_auc": "high"}}), encoding="utf-8")
    with pytest.raises(PipelineError, match=r"\(candidate\.roc_auc: Input should be a valid"):
        read_record(path, Scores)


def test_a_hand_edited_hand_off_stops_its_reader_with_one_line(project):
    """validate reads what ingest wrote through its record: a renamed field is one line naming
    it and the fix, not a KeyError."""
    runner = CliRunner()
    assert runner.invoke(app, ["ingest"]).exit_code == 0
    path = project.root / "reports/ingest.json"
    report = json.loads(path.read_text(encoding="utf-8"))
    report["offset"] = report.pop("line_offset")
    path.write_text(json.dumps(report), encoding="utf-8")
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert "ingest.json is not what the pipeline writes (line_offset: Field required" in line
    assert "uv run dvc checkout" in line


def test_each_record_reads_the_file_dvc_repro_wrote(interaction_project, tmp_path):
    """Every file that `dvc repro` (and `drift`) writes reads as its record, and the record
    writes it back unchanged: byte for byte for the files written through write_record
    (dvc metrics diff compares them), field for field for the manifest."""
    root = interaction_project.root
    batch = root / "batch.csv"
    interaction_project.frame.drop(columns=["target"]).to_csv(batch, index=False)
    drift = CliRunner().invoke(app, ["drift", "--current", str(batch)])
    assert drift.exit_code in (0, 1), drift.output  # 1: drift found; either writes the report
    for name, model in documented_records().items():
        path = root / name
        assert path.is_file(), name
        record = read_record(path, model)
        if name == "models/manifest.json":
            assert record.model_dump(mode="json") == json.loads(path.read_text(encoding="utf-8"))
            continue
        write_record(record, tmp_path / "again.json")
        assert (tmp_path / "again.json").read_bytes() == path.read_bytes(), name
