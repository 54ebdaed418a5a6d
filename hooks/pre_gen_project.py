"""Check the answers once more, for bakes that cookiecutter does not prompt for.

A prompted or `--no-input` bake was already checked by ml_template.extension (the
`__answers_checked` variable of cookiecutter.json) before cookiecutter created anything. A replayed
bake (`cookiecutter --replay` or `--replay-file`) skips that step, so its answers, possibly edited
by hand, are checked here instead, before a file is written; on failure cookiecutter removes the
project directory it has just created. The rules themselves live in ml_template/answers.py.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main(answers: dict[str, Any], template_dir: str) -> int:
    if not template_dir:
        # The template's extension did not render this hook (cruft create/update), so where the
        # rules live is unknown; those tools prompt through cookiecutter, whose extension has
        # checked the answers already.
        return 0
    sys.path.insert(0, template_dir)
    from ml_template.answers import report

    found = report(answers)
    for message in found:
        print(f"error: {message}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    # cookiecutter renders these: every answer as one JSON string, and the template's absolute
    # directory (ml_template.extension sets it; `_repo_dir` is the path as typed, e.g. ".").
    ANSWERS = json.loads({{cookiecutter | jsonify | tojson}})  # noqa: F821
    TEMPLATE_DIR = {{ml_template_root | default("") | tojson}}  # noqa: F821
    sys.exit(main(ANSWERS, TEMPLATE_DIR))
