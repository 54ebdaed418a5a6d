"""The DVC remote in GitHub Actions: what a job needs from it, pull, push, what to commit.

The workflows run it as `uv run python .github/scripts/dvc_remote.py COMMAND` (it is not part of
the package, and nothing else calls it):

  plan [--push]  does this job need the remote? Data tracked by `.dvc` files (`dvc add`,
                 `dvc import-url`) is the only input `dvc repro` cannot rebuild, so a job pulls
                 only when such files exist; with --push, the job pushes when a remote is set.
                 Writes `pull`, `push` and `run` to $GITHUB_OUTPUT. A missing remote or missing
                 credentials fail here, in one line that says what to configure; a pull request
                 from a fork, which never gets credentials, skips the pipeline with a notice.
  pull [TARGET]  pull the data tracked by `.dvc` files, or the named outputs (e.g. `models`{% if cookiecutter.deploy_target == "kubernetes" %},
                 which the deploy workflow takes from the remote{% endif %}).
  push           push the data and models that dvc.lock and the `.dvc` files name (with no
                 remote: a warning that they stay on the runner).
  paths          the files `dvc repro` and `dvc update` write that belong in git: dvc.lock, the
                 `.dvc` files, the outputs declared with `cache: false` and the .gitignore files
                 DVC keeps next to cached outputs. Read from DVC itself, so a new stage or output
                 needs no edit here. Written to $GITHUB_OUTPUT as `paths`, one per line.

Outside GitHub Actions (no $GITHUB_OUTPUT) outputs are printed as `name=value`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid
from pathlib import Path

from dvc.repo import Repo

DOCS = "docs/github.md"
# What a job must be given to reach this project's remote, for the error that says it is missing.
{%- if cookiecutter.dvc_remote == "s3" %}
CREDENTIALS_HELP = (
    "variables AWS_ROLE_ARN and AWS_REGION (OIDC), or secrets AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY with variable AWS_REGION"
)
{%- elif cookiecutter.dvc_remote == "gcs" %}
CREDENTIALS_HELP = (
    "variables GCP_WORKLOAD_IDENTITY_PROVIDER and GCP_SERVICE_ACCOUNT (workload identity "
    "federation), or secret GCP_SERVICE_ACCOUNT_KEY"
)
{%- elif cookiecutter.dvc_remote == "azure" %}
CREDENTIALS_HELP = (
    "variables AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_SUBSCRIPTION_ID and AZURE_STORAGE_ACCOUNT "
    "(federated credentials), or secret AZURE_STORAGE_CONNECTION_STRING"
)
{%- else %}
CREDENTIALS_HELP = "the credentials your remote needs"
{%- endif %}


class RemoteSetupError(Exception):
    """A problem the user fixes in the repository or on GitHub: printed as one error line."""


def annotate(level: str, title: str, message: str) -> None:
    """A GitHub workflow annotation: shown on the run's page, not only in its log."""
    print(f"::{level} title={title}::{message}", flush=True)


def set_output(name: str, value: str) -> None:
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        print(f"{name}={value}")
        return
    delimiter = f"EOF_{uuid.uuid4().hex}"
    with open(path, "a", encoding="utf-8") as output:
        output.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def summary(markdown: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as output:
            output.write(markdown + "\n")


def relative(repo: Repo, path: str) -> str:
    return Path(os.path.relpath(path, repo.root_dir)).as_posix()


def tracked_data(repo: Repo) -> list[str]:
    """The `.dvc` files: data added or imported outside the pipeline."""
    return sorted(
        relative(repo, stage.path) for stage in repo.index.stages if stage.path.endswith(".dvc")
    )


def default_remote(repo: Repo) -> tuple[str, str] | None:
    """(name, url) of the default remote, or None when the project has none."""
    name = repo.config["core"].get("remote")
    if not name:
        return None
    url = repo.config["remote"].get(name, {}).get("url", "")
    return name, url


def local_directory(repo: Repo, url: str) -> Path | None:
    """The directory of a local remote (DVC reads a relative one from .dvc/), else None."""
    if "://" in url:
        return None
    return Path(repo.dvc_dir, url) if not os.path.isabs(url) else Path(url)


def check_remote(repo: Repo, needed_for: str) -> tuple[str, str]:
    """The default remote; RemoteSetupError unless it exists, is reachable and has credentials."""
    remote = default_remote(repo)
    if remote is None:
        raise RemoteSetupError(
            f"{needed_for}, but this project has no DVC remote: add one "
            "(`uv run dvc remote add -d storage <url>`), commit .dvc/config, and "
            f"`uv run dvc push` (see {DOCS})"
        )
    name, url = remote
    directory = local_directory(repo, url)
    if directory is not None and not directory.is_dir():
        raise RemoteSetupError(
            f"{needed_for}, but the DVC remote '{name}' is the directory {directory}, which "
            "this runner does not have: use a runner that mounts it, or a cloud remote "
            f"(see {DOCS})"
        )
    if os.environ.get("STORAGE_CREDENTIALS") == "false":
        where = os.environ.get("STORAGE_ENVIRONMENT", "this job's")
        raise RemoteSetupError(
            f"{needed_for}, but the GitHub environment '{where}' has no credentials for the "
            f"DVC remote '{name}' ({url}): set {CREDENTIALS_HELP} (see {DOCS})"
        )
    return remote


NO_REMOTE_TO_PUSH = (
    "this project has no DVC remote, so the data and models of this run stay on the runner "
    f"and the dvc.lock it commits names outputs nobody else can pull: add a remote (see {DOCS})"
)


def plan(repo: Repo, push: bool) -> None:
    data = tracked_data(repo)
    from_fork = os.environ.get("FROM_FORK") == "true"
    pull = bool(data) and not from_fork
    run = not (data and from_fork)
    if data and from_fork:
        names = ", ".join(data)
        annotate(
            "notice",
            "Pipeline skipped",
            f"pull requests from forks get no storage credentials, so the DVC-tracked data "
            f"({names}) cannot be pulled and `dvc repro` did not run; a maintainer can run it "
            "by pushing this branch to the repository",
        )
        summary(
            "### Pipeline skipped\n\nThis pull request comes from a fork, which gets no "
            f"credentials for the DVC remote, so {names} could not be pulled. Lint and tests "
            "ran; a maintainer can run the pipeline by pushing this branch to the repository."
        )
    elif data:
        check_remote(repo, f"{', '.join(data)} {'is' if len(data) == 1 else 'are'} tracked by DVC")
        print(f"Data tracked by DVC, to pull before `dvc repro`: {', '.join(data)}")
    else:
        print("No data is tracked by .dvc files: `dvc repro` needs nothing from the remote.")
    if push and default_remote(repo) is None:
        annotate("warning", "Nothing will be pushed", NO_REMOTE_TO_PUSH)
        push = False
    elif push:
        check_remote(repo, "this job pushes data and models")
    set_output("pull", str(pull).lower())
    set_output("push", str(push).lower())
    set_output("run", str(run).lower())


def dvc(*arguments: str) -> None:
    """Run the DVC command line of this environment; its own messages explain failures."""
    result = subprocess.run([sys.executable, "-m", "dvc", *arguments], check=False)
    if result.returncode != 0:
        raise SystemExit(result.returncode)


def commit_paths(repo: Repo) -> list[str]:
    paths = {"dvc.lock", *tracked_data(repo)}
    for out in repo.index.outs:
        path = relative(repo, out.fs_path)
        if out.use_cache:
            # DVC lists each cached output in a .gitignore next to it.
            paths.add((Path(path).parent / ".gitignore").as_posix())
        else:
            paths.add(path)
    return sorted(path for path in paths if (Path(repo.root_dir) / path).exists())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    plan_parser = commands.add_parser("plan")
    plan_parser.add_argument("--push", action="store_true", help="this job will push")
    pull_parser = commands.add_parser("pull")
    pull_parser.add_argument("targets", nargs="*", help="outputs to pull (default: .dvc files)")
    for name in ("push", "paths"):
        commands.add_parser(name)
    arguments = parser.parse_args(argv)
    repo = Repo()
    try:
        if arguments.command == "plan":
            plan(repo, arguments.push)
        elif arguments.command == "pull" and arguments.targets:
            check_remote(repo, "this job pulls " + ", ".join(arguments.targets))
            dvc("pull", *arguments.targets)
        elif arguments.command == "pull":
            dvc("pull", *tracked_data(repo))
        elif arguments.command == "push":
            if default_remote(repo) is None:
                annotate("warning", "Nothing pushed", NO_REMOTE_TO_PUSH)
            else:
                check_remote(repo, "this job pushes data and models")
                dvc("push")
        else:
            paths = commit_paths(repo)
            print("\n".join(paths))
            set_output("paths", "\n".join(paths))
    except RemoteSetupError as problem:
        annotate("error", "DVC remote", str(problem))
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
