"""Validate the answers before anything is written.

cookiecutter runs this after the answers are known and before it renders a single file; a
non-zero exit aborts the bake and removes the half-made project, so a bad answer costs the user
nothing. Every message names the answer, what was given and what is allowed.
"""

from __future__ import annotations

import json
import keyword
import re
import sys

# cookiecutter renders this line into a JSON string literal of every answer.
ANSWERS: dict[str, str] = json.loads({{cookiecutter | jsonify | tojson}})  # noqa: F821

CHOICES = {
    "python_version": ("3.11", "3.12", "3.13"),
    "task": ("binary_classification", "multiclass", "regression"),
    "dvc_remote": ("none", "local", "s3", "gcs", "azure"),
    "mlflow_tracking": ("local", "server"),
    "deploy_target": ("kubernetes", "none"),
    "monitoring": ("yes", "no"),
    "license": ("MIT", "Apache-2.0", "BSD-3-Clause", "proprietary"),
}
REMOTE_SCHEMES = {"s3": "s3://", "gcs": "gs://", "azure": "azure://"}
# Import names the generated project depends on: a package with one of these names would
# shadow the library and break the pipeline in confusing ways.
DEPENDENCY_MODULES = {
    "bentoml",
    "dvc",
    "lightgbm",
    "mlflow",
    "numpy",
    "pandas",
    "pandera",
    "pyarrow",
    "pydantic",
    "sklearn",
    "typer",
    "yaml",
    "pytest",
    "tests",
}
SLUG = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PACKAGE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
GITHUB_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
FREE_TEXT_LIMIT = 200
# Longer names push the generated code past ruff's 100-column lines.
MAX_PACKAGE_LENGTH = 40


def problems(answers: dict[str, str]) -> list[str]:
    """Return one message per invalid answer (empty when all are valid)."""
    found: list[str] = []

    for name in ("project_name", "description", "author_name"):
        value = answers[name]
        if not value.strip():
            found.append(f"{name} is empty; give a short text.")
        elif len(value) > FREE_TEXT_LIMIT or any(ord(ch) < 32 for ch in value):
            found.append(
                f"{name} {value!r} must be one line of at most {FREE_TEXT_LIMIT} characters."
            )

    slug = answers["project_slug"]
    if not SLUG.match(slug) or len(slug) > 64:
        found.append(
            f"project_slug {slug!r} is not valid: use 1-64 lowercase letters, digits and single "
            "hyphens, starting with a letter (for example 'churn-model')."
        )

    package = answers["package_name"]
    if not PACKAGE.match(package) or len(package) > MAX_PACKAGE_LENGTH:
        found.append(
            f"package_name {package!r} is not a valid Python package name: use at most "
            f"{MAX_PACKAGE_LENGTH} lowercase letters, digits and single underscores, starting "
            "with a letter (e.g. 'churn_model')."
        )
    elif keyword.iskeyword(package) or package in sys.stdlib_module_names:
        found.append(
            f"package_name {package!r} is a Python keyword or standard-library module; "
            "choose another name (for example 'my_" + package + "')."
        )
    elif package in DEPENDENCY_MODULES:
        found.append(
            f"package_name {package!r} would shadow a library the project depends on; "
            "choose another name."
        )

    email = answers["author_email"]
    if not EMAIL.match(email):
        found.append(f"author_email {email!r} is not an email address (expected name@domain.tld).")

    owner = answers["github_owner"]
    if not GITHUB_OWNER.match(owner):
        found.append(
            f"github_owner {owner!r} is not a GitHub user or organisation name: 1-39 letters, "
            "digits or single hyphens, not starting or ending with a hyphen."
        )

    for name, allowed in CHOICES.items():
        if answers[name] not in allowed:
            found.append(
                f"{name} {answers[name]!r} is not supported; choose one of {', '.join(allowed)}."
            )

    remote, url = answers["dvc_remote"], answers["dvc_remote_url"].strip()
    if remote in REMOTE_SCHEMES:
        scheme = REMOTE_SCHEMES[remote]
        if not url.startswith(scheme) or len(url) <= len(scheme) or " " in url:
            found.append(
                f"dvc_remote_url {url!r} does not fit dvc_remote {remote!r}: "
                f"expected {scheme}<bucket>/<path>."
            )
    elif remote == "local" and (not url or "://" in url):
        found.append(
            f"dvc_remote_url {url!r} does not fit dvc_remote 'local': expected a directory path."
        )
    return found


def main() -> int:
    found = problems(ANSWERS)
    for message in found:
        print(f"ERROR: {message}", file=sys.stderr)
    if found:
        print(
            "Nothing was written. Run cookiecutter again with corrected answers.", file=sys.stderr
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
