{%- set slug = cookiecutter.project_slug -%}
"""Release steps shared by the deploy, rollback and rehearsal workflows (docs/deploy.md).

Each subcommand is one step a person could also run by hand with kubectl and the Argo Rollouts
plugin on PATH. Standard library only (plus PyYAML for `request`, which reads the data
contract), so the jobs that talk to a cluster need no project install. A failure prints one line
starting with `error:` and exits 1; `wait` also aborts and undoes a failed canary.

    python deploy/release.py install-tools             # kubectl-argo-rollouts, checksum-verified
    python deploy/release.py install-controller        # Argo Rollouts itself (rehearsal cluster)
    python deploy/release.py kubeconfig                # $KUBECONFIG_CONTENT -> a private file
    python deploy/release.py apply --overlay production --image ghcr.io/o/s:7-<sha>@sha256:<digest>
    python deploy/release.py wait --overlay production --timeout 40m
    python deploy/release.py request --url http://127.0.0.1:3000     # an example request body
    python deploy/release.py smoke --overlay staging --expect-version 7
    python deploy/release.py verify --overlay production --expect-version 7
    python deploy/release.py undo --overlay production [--to-version 6] [--timeout 40m]
    python deploy/release.py abort --overlay production    # stop a canary, back to stable

Which revisions completed as stable is recorded on their ReplicaSets (annotation
STABLE_ANNOTATION, written by `wait` once the Rollout is Healthy): `undo` without a version
returns to the newest of them serving another model version, never to a canary that failed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent
ROLLOUT = "{{ slug }}"
# On a ReplicaSet: when its revision became the Rollout's stable one (written by `wait`).
STABLE_ANNOTATION = "{{ slug }}.release/stable-at"
HASH_LABEL = "rollouts-pod-template-hash"
API_KEY_SECRET = "{{ slug }}-api-key"
PORT = 3000
# Argo Rollouts release used by the workflows: the kubectl plugin (checked against the release's
# own checksum file) and, for the throwaway rehearsal cluster, the controller manifest at the
# release's commit (checked against the SHA-256 below).
ARGO_ROLLOUTS_VERSION = "v1.9.1"
ARGO_ROLLOUTS_COMMIT = "b6bd3bcf8f60d717a98763d26acc983db7f97cb0"
ARGO_ROLLOUTS_INSTALL_SHA256 = "2701f5ff276e2a41b41d4d7cf8beeb7a62c6c850a34b71f031a29bbb656d543b"
RELEASES = f"https://github.com/argoproj/argo-rollouts/releases/download/{ARGO_ROLLOUTS_VERSION}"
INSTALL_URL = (
    "https://raw.githubusercontent.com/argoproj/argo-rollouts/"
    f"{ARGO_ROLLOUTS_COMMIT}/manifests/install.yaml"
)
# `<registry>/<owner>/<name>:<model version>-<git sha>[@sha256:<digest>]`, and the parts a tag
# may hold. The deploy workflow passes the digest the push returned: the cluster then runs
# exactly the image that was smoke-tested, whatever happens to the tag.
IMAGE = re.compile(
    r"^[a-z0-9.-]+(?::[0-9]+)?/[a-z0-9._/-]+:[A-Za-z0-9_.-]{1,128}(?:@sha256:[0-9a-f]{64})?$"
)
VERSION = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
TAG = re.compile(r"^(?P<version>[A-Za-z0-9_.-]+)-(?P<sha>[0-9a-f]{7,40})$")


class ReleaseError(Exception):
    """A step that cannot go on; the message is the one line the job log shows."""


# ------------------------------------------------------------------------------------------
# Small helpers: running kubectl, GitHub's step summary and outputs.
# ------------------------------------------------------------------------------------------
def run(*command: str, check: bool = True, stdin: str | None = None) -> str:
    """Run a command, return its stdout; a failure becomes a ReleaseError naming it."""
    try:
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True, check=False, timeout=3600
        )
    except FileNotFoundError:
        raise ReleaseError(f"`{command[0]}` is not installed or not on PATH") from None
    if check and result.returncode != 0:
        detail = last_line(result.stderr or result.stdout)
        raise ReleaseError(f"`{' '.join(command[:4])} ...` failed: {detail}")
    return result.stdout


def kubectl(*args: str, check: bool = True, stdin: str | None = None) -> str:
    return run("kubectl", *args, check=check, stdin=stdin)


def kubectl_json(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json"))


def github_file(variable: str, text: str) -> None:
    """Append to one of the files GitHub Actions reads after a step (summary, outputs, env)."""
    target = os.environ.get(variable)
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(text)


def summary(markdown: str) -> None:
    """Append to the job summary on GitHub, print elsewhere."""
    github_file("GITHUB_STEP_SUMMARY", markdown.rstrip("\n") + "\n\n")
    print(markdown)


def output(name: str, value: str) -> None:
    github_file("GITHUB_OUTPUT", f"{name}={value}\n")
    print(f"{name}={value}")


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.read()


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(nothing)"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_version_of(image: str) -> str:
    """The model version in an image tag `<model version>-<git sha>`."""
    tag = image.partition("@")[0].rsplit(":", 1)[-1]
    match = TAG.match(tag)
    if not match:
        raise ReleaseError(f"image {image} has no `<model version>-<git sha>` tag")
    return match["version"]


def same_version(a: str, b: str) -> bool:
    """Registry versions may be written `7` or `v7`."""
    return a.removeprefix("v") == b.removeprefix("v")


# ------------------------------------------------------------------------------------------
# Tools and cluster access.
# ------------------------------------------------------------------------------------------
def install_tools(directory: Path) -> None:
    """kubectl-argo-rollouts of ARGO_ROLLOUTS_VERSION, verified against the release checksums."""
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
    if arch is None:
        raise ReleaseError(f"no kubectl-argo-rollouts build for {platform.machine()}")
    name = f"kubectl-argo-rollouts-linux-{arch}"
    checksums = download(f"{RELEASES}/argo-rollouts-checksums.txt").decode()
    expected = {line.split()[1]: line.split()[0] for line in checksums.splitlines() if line.strip()}
    binary = download(f"{RELEASES}/{name}")
    if name not in expected or sha256(binary) != expected[name]:
        raise ReleaseError(f"{name} does not match argo-rollouts-checksums.txt: not installed")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "kubectl-argo-rollouts"
    target.write_bytes(binary)
    target.chmod(0o755)
    github_file("GITHUB_PATH", f"{directory}\n")
    print(f"installed kubectl-argo-rollouts {ARGO_ROLLOUTS_VERSION} in {directory}")


def install_controller() -> None:
    """Argo Rollouts into namespace argo-rollouts (throwaway clusters; see docs/deploy.md)."""
    manifest = download(INSTALL_URL)
    if sha256(manifest) != ARGO_ROLLOUTS_INSTALL_SHA256:
        raise ReleaseError("the Argo Rollouts install manifest changed: not applied")
    text = manifest.decode().replace(
        "quay.io/argoproj/argo-rollouts:latest",
        f"quay.io/argoproj/argo-rollouts:{ARGO_ROLLOUTS_VERSION}",
    )
    kubectl("create", "namespace", "argo-rollouts", check=False)
    kubectl("apply", "--server-side", "-n", "argo-rollouts", "-f", "-", stdin=text)
    kubectl("-n", "argo-rollouts", "rollout", "status", "deployment/argo-rollouts", "--timeout=5m")


def write_kubeconfig() -> None:
    """The environment's KUBECONFIG secret (YAML, or base64 of it) into a file only we read."""
    content = os.environ.get("KUBECONFIG_CONTENT", "").strip()
    environment = os.environ.get("DEPLOY_ENVIRONMENT", "this")
    if not content:
        raise ReleaseError(
            f"secret KUBECONFIG is empty: add the cluster's kubeconfig to the GitHub environment "
            f"'{environment}' (docs/deploy.md, one-time setup)"
        )
    if "apiVersion" not in content:
        try:
            content = base64.b64decode(content, validate=True).decode()
        except ValueError:
            raise ReleaseError("secret KUBECONFIG is not a kubeconfig, nor base64 of one") from None
    directory = Path(os.environ.get("RUNNER_TEMP", tempfile.gettempdir()))
    path = directory / "kubeconfig"
    path.touch(mode=0o600)
    path.write_text(content.strip() + "\n", encoding="utf-8")
    github_file("GITHUB_ENV", f"KUBECONFIG={path}\n")
    print(f"kubeconfig for environment '{environment}' written to {path}")


def require_namespace(namespace: str) -> None:
    """The namespace and its API key Secret exist (created once by hand, never by CI)."""
    found = kubectl(
        "-n", namespace, "get", "secret", API_KEY_SECRET, "--ignore-not-found", "-o", "name"
    )
    if not found.strip():
        raise ReleaseError(
            f"Secret {API_KEY_SECRET} not found in namespace {namespace}: create the namespace "
            "and the Secret first (docs/deploy.md, one-time setup)"
        )


# ------------------------------------------------------------------------------------------
# apply / wait / undo
# ------------------------------------------------------------------------------------------
def overlay_path(overlay: str) -> Path:
    path = Path(overlay)
    if not path.is_dir():
        path = ROOT / "k8s" / "overlays" / overlay
    if not (path / "kustomization.yaml").is_file():
        raise ReleaseError(f"overlay {overlay} not found (deploy/k8s/overlays/<name> or a path)")
    return path.resolve()


def render(overlay: str, image: str) -> str:
    """The overlay with the Rollout's image set to `image`, as `kubectl apply` will get it."""
    if not IMAGE.match(image):
        raise ReleaseError(
            f"image {image!r} is not `<registry>/<owner>/<name>:<tag>[@sha256:<digest>]`"
        )
    base = overlay_path(overlay)
    documents = kubectl("kustomize", str(base)).split("\n---\n")
    rollouts = [doc for doc in documents if re.search(r"^kind: Rollout$", doc, re.MULTILINE)]
    current = re.search(r"^\s+image: (\S+)$", rollouts[0] if rollouts else "", re.MULTILINE)
    if current is None:
        raise ReleaseError(f"overlay {overlay} renders no Rollout with an image")
    name, _, _ = current[1].partition("@")[0].rpartition(":")
    reference, _, digest = image.partition("@")
    new_name, _, new_tag = reference.rpartition(":")
    pinned = f"    digest: {digest}\n" if digest else ""
    # Kustomize refuses absolute resource paths: the layer lives next to the overlays, briefly.
    with tempfile.TemporaryDirectory(dir=ROOT / "k8s", prefix=".release-") as directory:
        (Path(directory) / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\n"
            "kind: Kustomization\n"
            f"resources:\n  - {os.path.relpath(base, directory)}\n"
            f"images:\n  - name: {name}\n    newName: {new_name}\n    newTag: {new_tag!r}\n"
            + pinned,
            encoding="utf-8",
        )
        return kubectl("kustomize", directory)


def overlay_namespace(overlay: str) -> str:
    return namespace_of(kubectl("kustomize", str(overlay_path(overlay))))


def namespace_of(manifests: str) -> str:
    found = re.search(r"^  namespace: (\S+)$", manifests, re.MULTILINE)
    if found is None:
        raise ReleaseError("the overlay sets no namespace")
    return found[1]


def apply(overlay: str, image: str) -> None:
    manifests = render(overlay, image)
    namespace = namespace_of(manifests)
    require_namespace(namespace)
    kubectl("apply", "-f", "-", stdin=manifests)
    output("namespace", namespace)
    summary(f"Applied overlay `{overlay}` with image `{image}` to namespace `{namespace}`.")


def rollout(namespace: str) -> dict[str, Any]:
    return kubectl_json("-n", namespace, "get", "rollout", ROLLOUT)


def analysis_report(namespace: str) -> str:
    """Markdown: the newest AnalysisRun of the rollout, each metric's phase and last value."""
    runs = kubectl_json("-n", namespace, "get", "analysisruns")["items"]
    ours = [
        item
        for item in runs
        if any(o.get("name") == ROLLOUT for o in item["metadata"].get("ownerReferences", []))
    ]
    if not ours:
        return "No AnalysisRun was started (the canary never reached an analysis step)."
    newest = max(ours, key=lambda item: item["metadata"]["creationTimestamp"])
    status = newest.get("status", {})
    lines = [
        f"AnalysisRun `{newest['metadata']['name']}`: **{status.get('phase', 'Unknown')}**"
        + (f" ({status['message']})" if status.get("message") else ""),
        "",
        "| metric | phase | last value | measurements (ok / failed / inconclusive) |",
        "|---|---|---|---|",
    ]
    for metric in status.get("metricResults", []):
        measurements = metric.get("measurements", [])
        last = measurements[-1].get("value", "") if measurements else ""
        counts = (
            f"{metric.get('successful', 0)} / {metric.get('failed', 0)} / "
            f"{metric.get('inconclusive', 0)}"
        )
        lines.append(f"| {metric['name']} | {metric.get('phase', '')} | `{last}` | {counts} |")
    return "\n".join(lines)


def wait(namespace: str, timeout: str) -> None:
    """Gate on `kubectl argo rollouts status`; on failure: report, abort, undo, confirm."""
    result = subprocess.run(
        ["kubectl", "argo", "rollouts", "status", ROLLOUT, "-n", namespace, "--timeout", timeout],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 0:
        image = current_image(namespace)
        try:
            mark_stable(namespace)
        except ReleaseError as error:
            warn(
                f"this revision is not recorded as stable ({error}): `undo` without a version "
                "will not return to it; the deployer needs `patch` on replicasets "
                "(deploy/k8s/setup/deployer-role.yaml)"
            )
        summary(f"Rollout `{ROLLOUT}` in `{namespace}` is **Healthy** on `{image}`.")
        return
    tree = kubectl("argo", "rollouts", "get", "rollout", ROLLOUT, "-n", namespace, check=False)
    summary(
        f"### Rollout `{ROLLOUT}` in `{namespace}` did not become Healthy\n\n"
        f"`kubectl argo rollouts status` said: {last_line(result.stdout + result.stderr)}\n\n"
        f"{analysis_report(namespace)}\n\n```\n{tree.strip()}\n```"
    )
    abort(namespace)
    raise ReleaseError(
        f"rollout of {ROLLOUT} in {namespace} failed; aborted and rolled back (see the summary)"
    )


def abort(namespace: str) -> None:
    """Abort a canary (all traffic to the stable pods) and put the Rollout back on stable."""
    kubectl("argo", "rollouts", "abort", ROLLOUT, "-n", namespace, check=False)
    stable = stable_revision(namespace, revisions(namespace))
    if stable is None:
        raise ReleaseError(
            f"{ROLLOUT} in {namespace} has no stable revision to return to (a first deploy): "
            "aborted only"
        )
    if current_image(namespace) == stable.image:
        summary(f"`{ROLLOUT}` in `{namespace}` is on its stable revision: nothing to undo.")
        return
    roll_to(namespace, stable, "10m", check_pods=False)


def current_image(namespace: str) -> str:
    return rollout(namespace)["spec"]["template"]["spec"]["containers"][0]["image"]


class Revision(NamedTuple):
    """One retained revision of the Rollout: its ReplicaSet, image and model version."""

    number: int
    hash: str
    name: str
    image: str
    version: str | None
    stable_at: str | None  # when it completed as stable (STABLE_ANNOTATION), None: never


def revisions(namespace: str) -> list[Revision]:
    """The Rollout's retained revisions, from its ReplicaSets."""
    selector = rollout(namespace)["spec"]["selector"]["matchLabels"]
    labels = ",".join(f"{key}={value}" for key, value in selector.items())
    found = []
    for item in kubectl_json("-n", namespace, "get", "replicasets", "-l", labels)["items"]:
        metadata = item["metadata"]
        annotations = metadata.get("annotations") or {}
        number = annotations.get("rollout.argoproj.io/revision")
        if not number:
            continue
        image = item["spec"]["template"]["spec"]["containers"][0]["image"]
        version = None
        with contextlib.suppress(ReleaseError):
            version = model_version_of(image)
        found.append(
            Revision(
                number=int(number),
                hash=(metadata.get("labels") or {}).get(HASH_LABEL, ""),
                name=metadata.get("name", ""),
                image=image,
                version=version,
                stable_at=annotations.get(STABLE_ANNOTATION),
            )
        )
    return sorted(found, key=lambda revision: revision.number)


def stable_revision(namespace: str, found: list[Revision]) -> Revision | None:
    """The revision the Rollout's stable pods run (status.stableRS)."""
    stable = rollout(namespace).get("status", {}).get("stableRS")
    return next((revision for revision in found if revision.hash == stable), None)


def mark_stable(namespace: str) -> None:
    """Record on the stable ReplicaSet that its revision completed as stable (for `undo`)."""
    stable = stable_revision(namespace, revisions(namespace))
    if stable is None:
        raise ReleaseError(f"rollout {ROLLOUT} in {namespace} has no stable ReplicaSet")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    annotation = f"{STABLE_ANNOTATION}={stamp}"
    kubectl("-n", namespace, "annotate", "replicaset", stable.name, annotation, "--overwrite")


def warn(message: str) -> None:
    print(("::warning::" if os.environ.get("GITHUB_ACTIONS") else "warning: ") + message)


def previous_stable(found: list[Revision], current: Revision | None) -> Revision:
    """The newest revision that completed as stable serving another model version than now."""
    served = current.version if current else None
    candidates = [
        revision
        for revision in found
        if revision.stable_at
        and revision.version
        and (served is None or not same_version(revision.version, served))
    ]
    if not candidates:
        raise ReleaseError(
            f"no retained revision of {ROLLOUT} completed as stable with a model version other "
            f"than the one served ({served}): name the version to return to (--to-version)"
        )
    return max(candidates, key=lambda revision: (revision.stable_at or "", revision.number))


def revision_of_version(found: list[Revision], version: str) -> Revision:
    """The newest retained revision serving model `version`, preferring ones that were stable."""
    matching = [r for r in found if r.version and same_version(r.version, version)]
    if not matching:
        raise ReleaseError(
            f"no retained revision of {ROLLOUT} runs model version {version}: "
            "deploy it with the Deploy workflow instead"
        )
    return max(matching, key=lambda revision: (revision.stable_at is not None, revision.number))


def roll_to(namespace: str, target: Revision, timeout: str, check_pods: bool) -> str:
    """`kubectl argo rollouts undo --to-revision`, wait until Healthy, check what is served."""
    before = current_image(namespace)
    kubectl("argo", "rollouts", "undo", ROLLOUT, "-n", namespace, f"--to-revision={target.number}")
    kubectl("argo", "rollouts", "status", ROLLOUT, "-n", namespace, "--timeout", timeout)
    state = rollout(namespace)
    after = state["spec"]["template"]["spec"]["containers"][0]["image"]
    stable = state.get("status", {}).get("stableRS")
    if after != target.image or (target.hash and stable != target.hash):
        raise ReleaseError(
            f"after the undo {ROLLOUT} runs {after} (stable {stable}), not {target.image} "
            f"(revision {target.number}, {target.hash})"
        )
    if check_pods and target.version:
        verify(namespace, target.version, None)
    output("image", after)
    output("model_version", target.version or "")
    summary(
        f"Rolled back `{ROLLOUT}` in `{namespace}`: `{before}` -> `{after}` "
        f"(revision {target.number}, Healthy)."
    )
    return after


def undo(namespace: str, to_version: str | None, timeout: str = "40m") -> str:
    """Back to the previous stable version (or the one serving `to_version`), verified."""
    found = revisions(namespace)
    current = stable_revision(namespace, found)
    if to_version:
        target = revision_of_version(found, to_version)
    else:
        target = previous_stable(found, current)
    if current is not None and target.hash == current.hash:
        raise ReleaseError(
            f"{ROLLOUT} in {namespace} already serves revision {target.number} "
            f"({target.image}): nothing to roll back"
        )
    return roll_to(namespace, target, timeout, check_pods=True)


# ------------------------------------------------------------------------------------------
# Talking to the service: example request, smoke test, per-pod version check.
# ------------------------------------------------------------------------------------------
def http(
    url: str, api_key: str | None, body: Any = None, timeout: float = 30
) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status, headers = response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        raw, status, headers = error.read(), error.code, dict(error.headers)
    try:
        return status, headers, json.loads(raw or b"null")
    except json.JSONDecodeError:
        return status, headers, raw.decode(errors="replace")


def wait_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            if http(f"{url}/readyz", None, timeout=5)[0] == 200:
                return
        if time.monotonic() > deadline:
            raise ReleaseError(f"{url}/readyz did not answer 200 within {timeout:.0f}s")
        time.sleep(2)


def example_record(schema_file: Path) -> dict[str, Any]:
    """One plausible input row from the data contract: mid-range numbers, an allowed category."""
    import yaml

    contract = yaml.safe_load(schema_file.read_text(encoding="utf-8"))
    record: dict[str, Any] = {}
    for name, rule in contract["columns"].items():
        if name == contract["target"]:
            continue
        if rule.get("allowed"):
            record[name] = rule["allowed"][0]
        elif rule["kind"] == "numeric":
            # The range seen in training (observed), within the declared bounds (min/max).
            observed = rule.get("observed") or {}
            low, high = observed.get("min", rule.get("min")), observed.get("max", rule.get("max"))
            if rule.get("min") is not None:
                low = rule["min"] if low is None else max(low, rule["min"])
            if rule.get("max") is not None:
                high = rule["max"] if high is None else min(high, rule["max"])
            record[name] = (low + high) / 2 if low is not None and high is not None else 0.0
        else:  # a category the model knows (null only when the contract lists none)
            record[name] = (rule.get("categories") or [None])[0]
    return record


def request_body(url: str, api_key: str | None, record: dict[str, Any]) -> Any:
    """The JSON body of POST /v1/predict for one record, shaped as the service's OpenAPI asks.

    BentoML names the JSON field after the API method's parameter; reading it from /docs.json
    keeps this smoke test independent of that name. Falls back to {"records": [...]}.
    """
    status, _, spec = http(f"{url}/docs.json", api_key)
    field = "records"
    if status == 200 and isinstance(spec, dict):
        with contextlib.suppress(KeyError, TypeError, StopIteration):
            schema = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"][
                "application/json"
            ]["schema"]
            if "$ref" in schema:
                schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
            if schema.get("type") == "array":
                return [record]
            field = next(
                name
                for name, prop in schema.get("properties", {}).items()
                if prop.get("type") == "array" or "$ref" in prop.get("items", {})
            )
    return {field: [record]}


def smoke(url: str, api_key: str | None, body: Any, expect: str | None) -> dict[str, Any]:
    """Readiness, /v1/info (model version), one prediction: the checks a new version must pass."""
    wait_ready(url, 180)
    status, _, info = http(f"{url}/v1/info", api_key)
    if status != 200 or not isinstance(info, dict) or "model_version" not in info:
        raise ReleaseError(f"GET {url}/v1/info answered {status}: {str(info)[:200]}")
    version = str(info["model_version"])
    if expect is not None and not same_version(version, expect):
        raise ReleaseError(f"{url} serves model version {version}, expected {expect}")
    if body is not None:
        status, headers, answer = http(f"{url}/v1/predict", api_key, body)
        if status != 200:
            raise ReleaseError(f"POST {url}/v1/predict answered {status}: {str(answer)[:300]}")
        served = headers.get("X-Model-Version") or headers.get("x-model-version")
        if served is not None and served != version:
            raise ReleaseError(f"/v1/predict answered with X-Model-Version {served}, not {version}")
    return info


@contextlib.contextmanager
def port_forward(namespace: str, target: str) -> Iterator[str]:
    """`kubectl port-forward` to a pod or service on a free local port; yields the base URL."""
    process = subprocess.Popen(
        ["kubectl", "-n", namespace, "port-forward", target, f":{PORT}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"127\.0\.0\.1:(\d+)", line)
        if found is None:
            error = process.stderr.read() if process.stderr else ""
            raise ReleaseError(f"port-forward to {target} failed: {(line + error).strip()}")
        yield f"http://127.0.0.1:{found[1]}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def cluster_api_key(namespace: str) -> str:
    encoded = kubectl(
        "-n", namespace, "get", "secret", API_KEY_SECRET, "-o", "jsonpath={.data.api-key}"
    )
    key = base64.b64decode(encoded).decode() if encoded else ""
    if os.environ.get("GITHUB_ACTIONS") and key:
        print(f"::add-mask::{key}")
    return key


def stable_pods(namespace: str) -> list[str]:
    status = rollout(namespace).get("status", {})
    stable = status.get("stableRS")
    if not stable:
        raise ReleaseError(f"rollout {ROLLOUT} in {namespace} has no stable ReplicaSet yet")
    pods = kubectl_json(
        "-n", namespace, "get", "pods", "-l", f"rollouts-pod-template-hash={stable}"
    )["items"]
    running = [p["metadata"]["name"] for p in pods if p.get("status", {}).get("phase") == "Running"]
    if not running:
        raise ReleaseError(f"no running stable pod of {ROLLOUT} in {namespace}")
    return running


def verify(namespace: str, expect: str | None, body: Any) -> None:
    """Every stable pod answers /v1/info with the expected model version (and one prediction)."""
    if expect is None:
        expect = model_version_of(current_image(namespace))
    key = cluster_api_key(namespace)
    rows = []
    for pod in stable_pods(namespace):
        with port_forward(namespace, f"pod/{pod}") as url:
            info = smoke(url, key, body, expect)
        rows.append(f"| `{pod}` | {info['model_version']} | {info.get('model_kind', '')} |")
    summary(
        f"Stable pods of `{ROLLOUT}` in `{namespace}` serve model version **{expect}**:\n\n"
        "| pod | model_version | model_kind |\n|---|---|---|\n" + "\n".join(rows)
    )


# ------------------------------------------------------------------------------------------
# Command line.
# ------------------------------------------------------------------------------------------
def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    tools = commands.add_parser("install-tools", help="kubectl-argo-rollouts")
    tools.add_argument(
        "--dir", type=Path, default=Path(os.environ.get("RUNNER_TEMP", "/tmp")) / "bin"
    )
    commands.add_parser("install-controller", help="Argo Rollouts (rehearsal clusters)")
    commands.add_parser("kubeconfig", help="write $KUBECONFIG_CONTENT to a private file")
    applying = commands.add_parser("apply", help="apply an overlay with an image")
    applying.add_argument("--overlay", required=True)
    applying.add_argument("--image", required=True)
    waiting = commands.add_parser("wait", help="wait until Healthy, else abort and undo")
    waiting.add_argument("--timeout", default="40m")
    undoing = commands.add_parser("undo", help="back to the previous (or a named) version")
    undoing.add_argument("--to-version")
    # An undo to a revision inside the Rollout's rollbackWindow is fast-tracked (no canary);
    # an older one runs the canary steps and analyses again: about 15 minutes in production.
    undoing.add_argument("--timeout", default="40m")
    aborting = commands.add_parser("abort", help="abort a canary, back to the stable version")
    requesting = commands.add_parser("request", help="print an example /v1/predict body")
    requesting.add_argument("--url", required=True)
    requesting.add_argument("--schema", type=Path, default=ROOT.parent / "schema.yaml")
    smoking = commands.add_parser("smoke", help="readiness, /v1/info, one prediction")
    smoking.add_argument("--url", help="a service on this machine (no port-forward)")
    verifying = commands.add_parser("verify", help="every stable pod serves the version")
    for command in (waiting, undoing, aborting, smoking, verifying):
        where = command.add_mutually_exclusive_group(required=command is not smoking)
        where.add_argument("--namespace")
        where.add_argument("--overlay", help="take the namespace from this overlay")
    for command in (smoking, verifying):
        command.add_argument("--expect-version")
        command.add_argument("--request", help="JSON body for one prediction; none: skip")
    args = parser.parse_args(argv)
    for value in (getattr(args, "expect_version", None), getattr(args, "to_version", None)):
        if value is not None and not VERSION.match(value):
            parser.error(f"model version {value!r} must match {VERSION.pattern}")
    if args.command == "smoke" and [args.url, args.namespace, args.overlay].count(None) != 2:
        parser.error("smoke needs one of --url, --namespace, --overlay")
    return args


def request(args: argparse.Namespace) -> Any:
    return json.loads(args.request) if args.request else None


def smoke_service(namespace: str, expect: str | None, body: Any) -> None:
    """The smoke test through the Service clients use (any one ready pod)."""
    key = cluster_api_key(namespace)
    with port_forward(namespace, f"service/{ROLLOUT}") as url:
        info = smoke(url, key, body, expect)
    summary(
        f"Smoke test of `{ROLLOUT}` in `{namespace}`: readiness, /v1/info (model version "
        f"**{info['model_version']}**)"
        + (", one prediction" if body is not None else "")
        + ": passed."
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "install-tools":
            install_tools(args.dir)
        elif args.command == "install-controller":
            install_controller()
        elif args.command == "kubeconfig":
            write_kubeconfig()
        elif args.command == "apply":
            apply(args.overlay, args.image)
        elif args.command == "request":
            wait_ready(args.url, 180)
            print(json.dumps(request_body(args.url, None, example_record(args.schema))))
        elif args.command == "smoke" and args.url:
            info = smoke(
                args.url, os.environ.get("SERVICE_API_KEY"), request(args), args.expect_version
            )
            output("model_version", str(info["model_version"]))
            summary(f"Smoke test of {args.url}: model version **{info['model_version']}**.")
        else:
            namespace = args.namespace or overlay_namespace(args.overlay)
            if args.command == "wait":
                wait(namespace, args.timeout)
            elif args.command == "undo":
                undo(namespace, args.to_version, args.timeout)
            elif args.command == "abort":
                abort(namespace)
            elif args.command == "verify":
                verify(namespace, args.expect_version, request(args))
            else:
                smoke_service(namespace, args.expect_version, request(args))
    except ReleaseError as error:
        print(f"error: {error}", file=sys.stderr)
        if os.environ.get("GITHUB_ACTIONS"):
            print(f"::error::{error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
