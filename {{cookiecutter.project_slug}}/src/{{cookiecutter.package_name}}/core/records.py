"""The typed hand-offs between stages and commands: what one writes to a JSON file and another
reads. Writers validate what they write against these models and readers get attributes, not
string keys, so a renamed field fails where it is written, and a hand-edited or stale file is
one message naming the field, not a KeyError three modules later.

Each model is strict (an unknown field is an error): the file and the code that reads it must
agree. `docs/reference/records.md` is generated from these models by the `report` stage.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.core.files import read_json, write_json


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


R = TypeVar("R", bound=Record)


def read_record(path: Path, model: type[R]) -> R:
    """`path` as `model`; a file of another shape is one message with the field and the fix."""
    try:
        return model.model_validate(read_json(path))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(the whole file)"
        raise PipelineError(
            f"{path} is not what the pipeline writes ({where}: {first['msg']}): it was edited "
            "or written by another version. Restore it with `uv run dvc checkout`, or rerun "
            "`uv run dvc repro`."
        ) from None


def write_record(record: Record, path: Path) -> None:
    write_json(record.model_dump(mode="json"), path)


# --- the gate (promotion/gate.py writes reports/gate.json) ---------------------------------


class GateCheck(Record):
    """One check of the gate. `status`: pass | fail | skip | unmet (a comparison that did not
    hold, without blocking on its own)."""

    name: str
    status: Literal["pass", "fail", "skip", "unmet"]
    value: Any
    threshold: Any
    detail: str


class ProposedModel(Record):
    """The model file the gate judged, by role and SHA-256."""

    role: Literal["floor", "baseline", "candidate"]
    kind: str
    file: str
    sha256: str


class GateReport(Record):
    """reports/gate.json: the gate's verdict, every check, and the rules it applied."""

    decision: Literal["promote", "reject"]
    proposed: str | None
    proposed_model: ProposedModel | None
    explanation: str
    primary_metric: str
    holdout_rows: int
    confidence: float
    latency_measure: str | None = None
    checks: list[GateCheck]
    failed_checks: list[str]
    warnings: list[Any]
    inputs: dict[str, str]
    rules: dict[str, Any]

    def check(self, name: str) -> GateCheck | None:
        return next((check for check in self.checks if check.name == name), None)


# --- MLflow logging (promotion/tracking.py writes reports/tracking.json) -------------------


class LoggedRun(Record):
    """One model's MLflow run: the logged model and the judged joblib file with its hash."""

    run_id: str
    model_uri: str
    artifact_path: str
    artifact_sha256: str


class TrackingReport(Record):
    """reports/tracking.json: where evaluate logged this pipeline run."""

    tracking_uri: str
    experiment: str
    parent_run_id: str
    runs: dict[str, LoggedRun]
    data: dict[str, str]


RECORDS: dict[str, type[Record]] = {
    "reports/gate.json": GateReport,
    "reports/tracking.json": TrackingReport,
}


def _type_name(annotation: Any) -> str:
    """`str`, `list[GateCheck]`, `ProposedModel or None`: a field's type as a reader writes it."""
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    text = str(annotation).replace("typing.", "").replace(" | ", " or ")
    return text.replace(f"{__name__}.", "")


def reference() -> str:
    """Markdown reference of every record, from the models' fields and docstrings."""
    lines = [
        "# Records: the files stages hand to each other",
        "",
        "Generated from `core/records.py` by the `report` stage. Every field is required unless "
        "it has a default; an unknown field is an error.",
    ]
    seen: set[type[Record]] = set()

    def describe(model: type[Record], title: str) -> None:
        if model in seen:
            return
        seen.add(model)
        lines.extend(["", f"## {title}", "", inspect.cleandoc(model.__doc__ or ""), ""])
        lines.extend(["| field | type | default |", "|---|---|---|"])
        nested = []
        for name, field in model.model_fields.items():
            annotation = _type_name(field.annotation)
            default = "" if field.is_required() else repr(field.default)
            lines.append(f"| `{name}` | `{annotation}` | {default} |")
            for candidate in Record.__subclasses__():
                if candidate.__name__ in annotation:
                    nested.append(candidate)
        for child in nested:
            describe(child, f"`{child.__name__}`")

    for path, model in RECORDS.items():
        describe(model, f"`{path}` ({model.__name__})")
    return "\n".join(lines) + "\n"
