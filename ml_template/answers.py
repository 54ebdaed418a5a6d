"""What each cookiecutter answer may be: the one place that decides it.

`ml_template.extension` calls `check()` while cookiecutter resolves the answers, before it creates
the project directory or writes a file; `hooks/pre_gen_project.py` calls it again for bakes that
are not prompted (`cookiecutter --replay`); the tests import it directly. The questions, their
order and the allowed choices are read from cookiecutter.json, never restated here.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
import tomllib
import unicodedata
from collections.abc import Callable, Mapping, MutableMapping
from functools import cache
from pathlib import Path
from typing import Any

from cookiecutter.exceptions import FailedHookException

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
COOKIECUTTER_JSON = TEMPLATE_ROOT / "cookiecutter.json"
PROJECT_TEMPLATE = TEMPLATE_ROOT / "{{cookiecutter.project_slug}}"

FREE_TEXT = ("project_name", "description", "author_name")
# Answers the extension strips of leading and trailing spaces before checking them: nothing
# derived from them keeps the spaces (the slug is a slugify of the name). The others (a slug,
# an owner, a choice...) feed derived defaults that were rendered with the spaces, so spaces
# around them are refused instead.
STRIPPED = (*FREE_TEXT, "author_email")
FREE_TEXT_LIMIT = 200
MAX_SLUG_LENGTH = 64
# Longer names push the generated code past ruff's 100-column lines.
MAX_PACKAGE_LENGTH = 40
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit; the local part is at most 64
MAX_URL_LENGTH = 1024
SHOWN_LENGTH = 60

SLUG = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
PACKAGE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
# ASCII dot-atom local part and a DNS domain with a top-level label: what hatchling accepts
# when it writes the Author-email header (email.headerregistry.Address), minus quoted forms.
EMAIL = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
GITHUB_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")

# DVC remote URLs: no whitespace, `#`, `;`, quotes or commas, which .dvc/config (configobj)
# would read as comments, lists or the start of another section.
_SEGMENT = r"[A-Za-z0-9._~+=@-]{1,255}"
_PATH = rf"(?:/{_SEGMENT})*/?"
REMOTE_URLS: dict[str, tuple[re.Pattern[str], str]] = {
    "s3": (
        re.compile(rf"s3://[a-z0-9][a-z0-9.-]{{1,61}}[a-z0-9]{_PATH}"),
        "s3://<bucket>/<path> (bucket: 3-63 lowercase letters, digits, dots or hyphens)",
    ),
    "gcs": (
        re.compile(rf"gs://[a-z0-9][a-z0-9._-]{{1,220}}[a-z0-9]{_PATH}"),
        "gs://<bucket>/<path> (bucket: lowercase letters, digits, dots, hyphens, underscores)",
    ),
    "azure": (
        re.compile(rf"azure://[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){{2,62}}{_PATH}"),
        "azure://<container>/<path> (container: 3-63 lowercase letters, digits, single hyphens)",
    ),
    "local": (
        # Absolute, or relative to .dvc/ (where DVC resolves a local remote's URL from).
        re.compile(rf"(?:/{_SEGMENT})+/?|(?:\.\./)+{_SEGMENT}(?:/{_SEGMENT})*/?"),
        "an absolute directory path such as /mnt/dvc-storage/project, or one relative to "
        ".dvc/ such as ../../project-dvc-storage",
    ),
}
URL_CHARACTERS = "letters, digits and . _ ~ + = @ - between slashes"

# Standard-library modules that sys.stdlib_module_names leaves out: its test modules (`test` is
# importable in most installs), and the modules removed in the Python versions after the oldest
# one the project supports (3.11), which the project's Python still has when cookiecutter runs
# on a newer one. A package of one of these names would be shadowed: the standard library comes
# first on sys.path.
STDLIB_MODULES_NOT_LISTED = frozenset(
    {
        "test",
        "xxlimited",
        "xxlimited_35",
        "xxsubtype",
        # removed in 3.12
        "asynchat",
        "asyncore",
        "distutils",
        "imp",
        "smtpd",
        # removed in 3.13
        "aifc",
        "audioop",
        "cgi",
        "cgitb",
        "chunk",
        "crypt",
        "imghdr",
        "lib2to3",
        "mailcap",
        "msilib",
        "nis",
        "nntplib",
        "ossaudiodev",
        "pipes",
        "sndhdr",
        "spwd",
        "sunau",
        "telnetlib",
        "uu",
        "xdrlib",
    }
)
STDLIB_MODULES = frozenset(sys.stdlib_module_names) | STDLIB_MODULES_NOT_LISTED

# Characters refused in every answer, by Unicode category: they break a line or a file, or they
# are invisible and make a name read differently from what it is (a right-to-left override
# U+202E, a zero-width space U+200B or joiner U+200D, a byte-order mark U+FEFF).
REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character",
    "Cs": "a lone surrogate",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}

# Names Windows cannot give a file or directory (the slug and the package become both).
WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
)
# Top-level import names of the locked dependencies (every extra included) that differ from
# their distribution's name; the others are read from uv.lock. A package of one of these names
# would be shadowed by the library in the project's environment. tests/test_answers.py checks
# this list against an installed project (slow test).
IMPORT_NAMES_OUTSIDE_LOCK = frozenset(
    {
        "antlr4",
        "attr",
        "azure",
        "bentoml_cli",
        "cattr",
        "circus",
        "databricks",
        "dateutil",
        "dotenv",
        "example",
        "flufl",
        "git",
        "google",
        "graphql",
        "grpc",
        "grpc_status",
        "hydra",
        "importlinter",
        "jwt",
        "markdown_it",
        "material",
        "materialx",
        "mpl_toolkits",
        "mypyc",
        "multipart",
        "opentelemetry",
        "packaging_legacy_version",
        "proto",
        "public",
        "py",
        "pydevd_plugins",
        "pylab",
        "pymdownx",
        "pynvml",
        "pythonjsonlogger",
        "ruamel",
        "sklearn",
        "validate",
        "yaml",
        "yaml_env_tag",
        "zc",
        "zmq",
    }
)


class InvalidAnswers(FailedHookException):
    """Raised before anything is written; one `error: ...` line per problem.

    A FailedHookException, so that the cookiecutter command line prints the message and exits
    with 1 (no traceback), and API callers catch it as they catch a failing pre_gen hook.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"error: {problem}" for problem in problems))


@cache
def template_questions() -> dict[str, Any]:
    """cookiecutter.json as written, private keys (`_extensions`, `__prompts__`...) included."""
    return json.loads(COOKIECUTTER_JSON.read_text(encoding="utf-8"))


def questions() -> dict[str, Any]:
    """The questions (public keys of cookiecutter.json) and their raw defaults, in order."""
    return {key: value for key, value in template_questions().items() if not key.startswith("_")}


def choices() -> dict[str, tuple[str, ...]]:
    """The multiple-choice questions and their allowed values (`_choices` of cookiecutter.json).

    The questions themselves are text questions whose default is the first choice: a list
    question would make cookiecutter refuse an unknown value given on the command line itself,
    with a traceback, before this module could name the answer.
    """
    return {key: tuple(values) for key, values in template_questions()["_choices"].items()}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


@cache
def locked_distributions() -> frozenset[str]:
    """Every distribution in the generated project's uv.lock, normalized (`-` and `.` as `_`)."""
    lock = tomllib.loads((PROJECT_TEMPLATE / "uv.lock").read_text(encoding="utf-8"))
    return frozenset(
        _normalize(package["name"]) for package in lock["package"] if "{" not in package["name"]
    )


@cache
def project_modules() -> frozenset[str]:
    """Top-level module names the generated project's test run imports besides its package."""
    tests = PROJECT_TEMPLATE / "tests"
    return frozenset({"tests", *(path.stem for path in tests.glob("*.py"))})


def shown(value: str) -> str:
    """The value as a Python literal (control characters visible), cut to one short line."""
    if len(value) <= SHOWN_LENGTH:
        return repr(value)
    return f"{value[:SHOWN_LENGTH]!r}... ({len(value)} characters)"


def stripped(value: str) -> str:
    """`value` without leading and trailing spaces (Unicode category Zs).

    Tabs, line breaks and other control characters stay, to be refused with their code point.
    """
    start, end = 0, len(value)
    while start < end and unicodedata.category(value[start]) == "Zs":
        start += 1
    while end > start and unicodedata.category(value[end - 1]) == "Zs":
        end -= 1
    return value[start:end]


def _refused_character(name: str, value: str) -> str | None:
    """The message for the first character no answer may hold, or None."""
    for character in value:
        kind = REFUSED_CATEGORIES.get(unicodedata.category(character))
        if kind is None:
            continue
        code = f"U+{ord(character):04X}"
        label = unicodedata.name(character, "")
        return (
            f"{name} {shown(value)} contains {code}{f' {label}' if label else ''}, {kind}; "
            "remove it (answers are one line of visible text)."
        )
    return None


def _free_text(name: str, value: str, _answers: Mapping[str, str]) -> str | None:
    if not value.strip():
        return f"{name} is empty; give a short text."
    if len(value) > FREE_TEXT_LIMIT:
        return f"{name} {shown(value)} is longer than {FREE_TEXT_LIMIT} characters; shorten it."
    return None


def _slug(name: str, value: str, _answers: Mapping[str, str]) -> str | None:
    if not SLUG.fullmatch(value) or len(value) > MAX_SLUG_LENGTH:
        return (
            f"{name} {shown(value)} is not valid: use 1-{MAX_SLUG_LENGTH} lowercase letters, "
            "digits and single hyphens, starting with a letter (for example 'churn-model')."
        )
    if value in WINDOWS_RESERVED:
        return f"{name} {shown(value)} is a name Windows reserves for devices; choose another."
    if _normalize(value) in locked_distributions():
        return (
            f"{name} {shown(value)} is the name of a library the project depends on; "
            f"choose another (for example 'my-{value}')."
        )
    return None


def _another_package(value: str, answers: Mapping[str, str]) -> str:
    """How to get another package name: from the answer it was derived from, or directly."""
    example = f"package_name=my_{value}"
    derived_answers = derived(answers)
    if "package_name" not in derived_answers:
        return f"choose another (for example {example})"
    source = "project_name" if "project_slug" in derived_answers else "project_slug"
    return (
        f"it comes from {source} {shown(str(answers.get(source, '')))}: choose another "
        f"{source}, or give package_name (for example {example})"
    )


def _package(name: str, value: str, answers: Mapping[str, str]) -> str | None:
    if not PACKAGE.fullmatch(value) or len(value) > MAX_PACKAGE_LENGTH:
        return (
            f"{name} {shown(value)} is not a valid Python package name: use at most "
            f"{MAX_PACKAGE_LENGTH} lowercase letters, digits and single underscores, starting "
            "with a letter (for example 'churn_model')."
        )
    if keyword.iskeyword(value):
        return f"{name} {shown(value)} is a Python keyword; {_another_package(value, answers)}."
    if value in STDLIB_MODULES:
        return (
            f"{name} {shown(value)} is a standard-library module, which Python would import "
            f"instead of the project's package; {_another_package(value, answers)}."
        )
    if value in locked_distributions() or value in IMPORT_NAMES_OUTSIDE_LOCK:
        return (
            f"{name} {shown(value)} would shadow or be shadowed by a library the project "
            f"depends on; {_another_package(value, answers)}."
        )
    if value in project_modules():
        return (
            f"{name} {shown(value)} is also a module of the project's tests/ and would collide "
            f"with it; choose another (for example 'my_{value}')."
        )
    if value in WINDOWS_RESERVED:
        return f"{name} {shown(value)} is a name Windows reserves for devices; choose another."
    return None


def _email(name: str, value: str, _answers: Mapping[str, str]) -> str | None:
    match = EMAIL.fullmatch(value)
    if match and len(value) <= MAX_EMAIL_LENGTH and len(match["local"]) <= 64:
        return None
    return (
        f"{name} {shown(value)} is not an email address: expected name@domain.tld in ASCII, "
        f"at most {MAX_EMAIL_LENGTH} characters."
    )


def _github_owner(name: str, value: str, _answers: Mapping[str, str]) -> str | None:
    if GITHUB_OWNER.fullmatch(value):
        return None
    return (
        f"{name} {shown(value)} is not a GitHub user or organisation name: 1-39 letters, "
        "digits or single hyphens, not starting or ending with a hyphen."
    )


def _remote_url(name: str, value: str, answers: Mapping[str, str]) -> str | None:
    remote = answers.get("dvc_remote")
    if remote not in REMOTE_URLS:
        if value == "":
            return None
        return (
            f"{name} {shown(value)} is given but dvc_remote is {remote!r}; choose the remote "
            "it belongs to or leave the URL empty."
        )
    pattern, expected = REMOTE_URLS[remote]
    if len(value) <= MAX_URL_LENGTH and pattern.fullmatch(value):
        return None
    return (
        f"{name} {shown(value)} does not fit dvc_remote {remote!r}: expected {expected}, "
        f"with only {URL_CHARACTERS}."
    )


CHECKS: dict[str, Callable[[str, str, Mapping[str, str]], str | None]] = {
    **dict.fromkeys(FREE_TEXT, _free_text),
    "project_slug": _slug,
    "package_name": _package,
    "author_email": _email,
    "github_owner": _github_owner,
    "dvc_remote_url": _remote_url,
}


def _check_one(name: str, value: object, answers: Mapping[str, str]) -> str | None:
    if not isinstance(value, str):
        return f"{name} {value!r} is not text; give it as a string."
    if message := _refused_character(name, value):
        return message
    if stripped(value) not in {"", value}:
        return f"{name} {shown(value)} starts or ends with spaces; remove them."
    allowed = choices().get(name)
    if allowed is not None:
        if value in allowed:
            return None
        return f"{name} {shown(value)} is not supported; choose one of {', '.join(allowed)}."
    check = CHECKS.get(name)
    return check(name, value, answers) if check else None


def problems(answers: Mapping[str, Any]) -> dict[str, str]:
    """One message per invalid answer, keyed by question, in cookiecutter.json order."""
    found = {}
    for name in questions():
        if name not in answers:
            found[name] = f"{name} is missing; give a value."
        elif message := _check_one(name, answers[name], answers):
            found[name] = message
    return found


def derived(answers: Mapping[str, Any]) -> set[str]:
    """The answers equal to their default as cookiecutter.json derives it from earlier ones."""
    from cookiecutter.environment import StrictEnvironment
    from jinja2 import TemplateError

    environment = StrictEnvironment()
    found = set()
    for name, raw in questions().items():
        if isinstance(raw, str) and ("{{" in raw or "{%" in raw):
            try:
                default = environment.from_string(raw).render(cookiecutter=dict(answers))
            except (TemplateError, TypeError, ValueError):  # earlier answers too broken to use
                continue
            if default == answers.get(name):
                found.add(name)
    return found


def report(answers: Mapping[str, Any]) -> list[str]:
    """The problems to show: a derived answer's problem only when the answers before it are
    valid, because fixing those fixes it (a 10,000-character name is one problem, not three)."""
    found = problems(answers)
    consequences = derived(answers)
    order = list(questions())
    shown_problems = []
    for name, message in found.items():
        earlier = any(order.index(other) < order.index(name) for other in found)
        if name in consequences and earlier:
            continue
        shown_problems.append(message)
    return shown_problems


def strip(answers: MutableMapping[str, Any]) -> None:
    """Strip leading and trailing spaces from the answers where that is safe (STRIPPED)."""
    for name in STRIPPED:
        if isinstance(answers.get(name), str):
            answers[name] = stripped(answers[name])


def check(answers: Mapping[str, Any]) -> None:
    """Raise InvalidAnswers naming every problem; return quietly when all answers are valid."""
    if found := report(answers):
        raise InvalidAnswers(found)
