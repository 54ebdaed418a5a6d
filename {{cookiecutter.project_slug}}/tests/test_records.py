"""The typed hand-offs (core/records.py): a file of another shape is one message naming the
field, and the generated reference describes every field."""

from __future__ import annotations

import json

import pytest

from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.records import (
    RECORDS,
    GateReport,
    read_record,
    reference,
    write_record,
)

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


def test_the_reference_describes_every_field():
    text = reference()
    for model in RECORDS.values():
        for name in model.model_fields:
            assert f"| `{name}` |" in text, (model.__name__, name)
    assert "## `ProposedModel`" in text and "## `LoggedRun`" in text
