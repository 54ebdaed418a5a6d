"""docs/questions.md names every question of cookiecutter.json, and nothing that is not one."""

from __future__ import annotations

import json
import re
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]


def test_every_question_is_documented() -> None:
    questions = {
        name
        for name in json.loads((TEMPLATE / "cookiecutter.json").read_text(encoding="utf-8"))
        if not name.startswith("_")
    }
    page = (TEMPLATE / "docs/questions.md").read_text(encoding="utf-8")
    first_table = page.split("\n\n| workflow |")[0]
    documented = set(re.findall(r"^\| ([^|]+) \|", first_table, re.M)) - {"question", "---"}
    names = {name.strip("` ") for row in documented for name in row.split(",")}
    assert questions - names == set(), f"undocumented: {sorted(questions - names)}"
    assert names - questions == set(), f"not questions: {sorted(names - questions)}"
