"""The Jinja extension cookiecutter loads from `_extensions` in cookiecutter.json.

It adds two filters:
- `check_answers`, rendered by the private `__answers_checked` variable, which cookiecutter
  renders after every answer it depends on and before it creates the project directory, runs a
  hook or writes the replay file: a bad answer (a 10,000-character name, a slug with `/`) is
  refused there with one line per problem and nothing left behind. The pre_gen hook would come
  too late for those: cookiecutter creates the project directory (from the slug) before it.
  It first strips leading and trailing spaces from the free-text answers, in the answers
  cookiecutter goes on to use (the dict it renders with), so that `project_name="My Model "`
  bakes files without trailing spaces.
- `toml_string`, to write free text into TOML.

and the global `ml_template_root`, the template's absolute directory: the pre_gen hook imports the
answer rules from there. cookiecutter's own `_repo_dir` is the path as typed (`cookiecutter .`
gives "."), which means nothing in the hook's working directory, the new project.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension

from ml_template.answers import check, questions, strip


def check_answers(answers: MutableMapping[str, Any]) -> str:
    """Raise InvalidAnswers for bad answers; the return value is recorded in the replay file.

    A replay of a project's `.cookiecutter.json` records the answers but not this variable, so
    cookiecutter renders it with none of the answers in view: those are left to the pre_gen hook,
    which sees the replayed ones.
    """
    if not set(questions()) <= set(answers):
        return "left to the pre_gen hook"
    strip(answers)
    check(answers)
    return "checked"


def toml_string(value: str) -> str:
    """`value` as a TOML basic string, every Unicode scalar kept as it is.

    Hand-written because Jinja's `tojson` escapes characters outside the Basic Multilingual
    Plane as JSON surrogate pairs (an emoji becomes \\ud83d\\ude00), which TOML forbids, and no
    TOML writer is guaranteed to be installed next to cookiecutter. TOML requires escaping only
    the quote, the backslash and control characters.
    """
    parts = []
    for character in value:
        code = ord(character)
        if 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"{value!r} holds a lone surrogate, which TOML cannot represent")
        if character in '"\\':
            parts.append("\\" + character)
        elif code < 0x20 or code == 0x7F:
            parts.append(f"\\u{code:04X}")
        else:
            parts.append(character)
    return '"' + "".join(parts) + '"'


class AnswersExtension(Extension):
    """Registers the `check_answers` and `toml_string` filters."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["check_answers"] = check_answers
        environment.filters["toml_string"] = toml_string
        environment.globals["ml_template_root"] = str(Path(__file__).resolve().parents[1])
