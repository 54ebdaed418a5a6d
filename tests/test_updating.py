"""A project baked from an older template version takes a newer one with cruft, as documented.

docs/updating.md tells teams to bake with `cruft create` and to take template changes with
`cruft update`; this runs exactly that on a copy of the template made into its own git
repository (so the test does not depend on this checkout's git state).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEMPLATE

CRUFT = Path(sys.executable).parent / "cruft"
IGNORED = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache")
IDENTITY = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
}


def run(*command: str | Path, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        **IDENTITY,
        "HOME": str(tmp_path / "home"),
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def test_cruft_create_then_update_brings_a_template_change(tmp_path, environment) -> None:
    template = tmp_path / "template"
    shutil.copytree(TEMPLATE, template, ignore=IGNORED)
    run("git", "init", "-q", cwd=template, env=environment)
    run("git", "add", "-A", cwd=template, env=environment)
    run("git", "commit", "-qm", "v1", cwd=template, env=environment)

    projects = tmp_path / "projects"
    projects.mkdir()
    run(
        CRUFT,
        "create",
        template,
        "--no-input",
        "--extra-context",
        json.dumps({"project_name": "Updated Model"}),
        cwd=projects,
        env=environment,
    )
    project = projects / "updated-model"
    state = json.loads((project / ".cruft.json").read_text(encoding="utf-8"))
    assert state["context"]["cookiecutter"]["project_name"] == "Updated Model"
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "bake"]):
        run("git", *command, cwd=project, env=environment)

    # A new template version changes a generated doc.
    page = template / "{{cookiecutter.project_slug}}" / "docs" / "data.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nA line added in v2.\n", encoding="utf-8")
    run("git", "commit", "-qam", "v2", cwd=template, env=environment)

    check = subprocess.run([CRUFT, "check"], cwd=project, env=environment, capture_output=True)
    assert check.returncode != 0, "cruft check should see the newer template"
    run(
        CRUFT, "update", "--skip-apply-ask", "--allow-untracked-files", cwd=project, env=environment
    )
    assert (
        (project / "docs" / "data.md").read_text(encoding="utf-8").endswith("A line added in v2.\n")
    )
    run(CRUFT, "check", cwd=project, env=environment)
