"""The canary analysis against a real Prometheus scraping real `bentoml serve` processes.

- Each `bentoml serve` of the default bake stands for one pod of the rendered production
  Rollout: a stable pod, a healthy canary (the same model) and a broken one (the rehearsal's
  broken version: its API key was rotated before the clients knew, so it answers 401).
- Prometheus scrapes them with the job the Prometheus Operator generates from the shipped
  PodMonitor: the same relabel_configs in the same order, applied to the meta labels Kubernetes'
  pod discovery gives each pod (namespace, name, container, port name, pod labels with Argo's
  `rollouts-pod-template-hash`), taken from the rendered Rollout. Only the discovery is replaced
  (a static target per process, with those meta labels), and time is compressed: Prometheus
  scrapes every second instead of the PodMonitor's interval.
- Every metric of the rendered AnalysisTemplate is resolved as Argo Rollouts resolves it
  (`{{ args.x }}` substituted in the whole metric), queried through Prometheus' HTTP API, and
  judged by Argo's rules: successCondition/failureCondition (the expr-lang subset below; an
  expression outside it fails the test), then failureLimit, inconclusiveLimit, count and the
  run ending at the first metric that completes Failed, Error or Inconclusive.

Not covered here: a canary answering slowly. The service has no honest way to be slow (no
setting adds latency), so the p95 bar is checked on synthetic histograms by promtool in
test_deploy.py; here the healthy canary's real latencies must pass it.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Project
from test_deploy import ARG, kustomize, one, sanitized

PROMETHEUS = shutil.which("prometheus")
SCRAPE_INTERVAL_SECONDS = 1
# A `rate()` or `increase()` window must hold at least this many scrapes at the PodMonitor's
# interval, or one missed scrape leaves it with a single sample and the query comes back empty.
SCRAPES_PER_WINDOW = 4
CURRENT_KEY = "the-clients-key"
ROTATED_KEY = "a-key-the-clients-do-not-have"


# --------------------------------------------------------------------------------------------
# The Prometheus Operator: PodMonitor -> scrape job.
# --------------------------------------------------------------------------------------------
POD_MONITOR_FIELDS = {"selector", "podTargetLabels", "podMetricsEndpoints"}
ENDPOINT_FIELDS = {"port", "path", "interval", "scrapeTimeout", "honorLabels"}


def operator_scrape_job(monitor: dict[str, Any], pods: list[dict[str, str]]) -> dict[str, Any]:
    """The scrape job the Prometheus Operator generates for the PodMonitor's only endpoint
    (generatePodMonitorConfig, one shard), with `pods` (meta labels plus `__address__`) as
    what its kubernetes_sd_configs (role pod) would discover."""
    spec = monitor["spec"]
    namespace, name = monitor["metadata"]["namespace"], monitor["metadata"]["name"]
    unknown = set(spec) - POD_MONITOR_FIELDS
    assert not unknown, f"PodMonitor fields this test does not translate yet: {sorted(unknown)}"
    assert set(spec["selector"]) == {"matchLabels"}, "only selector.matchLabels is translated"
    (endpoint,) = spec["podMetricsEndpoints"]
    unknown = set(endpoint) - ENDPOINT_FIELDS
    assert not unknown, f"podMetricsEndpoints fields not translated yet: {sorted(unknown)}"
    port = endpoint["port"]
    relabel: list[dict[str, Any]] = [
        {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"},
        {
            "action": "drop",
            "source_labels": ["__meta_kubernetes_pod_phase"],
            "regex": "(Failed|Succeeded)",
        },
    ]
    for key, value in sorted(spec["selector"]["matchLabels"].items()):
        relabel.append(
            {
                "action": "keep",
                "source_labels": [
                    f"__meta_kubernetes_pod_label_{sanitized(key)}",
                    f"__meta_kubernetes_pod_labelpresent_{sanitized(key)}",
                ],
                "regex": f"({value});true",
            }
        )
    relabel += [
        {
            "action": "keep",
            "source_labels": ["__meta_kubernetes_pod_container_port_name"],
            "regex": port,
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]
    for label in spec.get("podTargetLabels", []):
        relabel.append(
            {
                "source_labels": [f"__meta_kubernetes_pod_label_{sanitized(label)}"],
                "target_label": sanitized(label),
                "regex": "(.+)",
                "replacement": "${1}",
            }
        )
    relabel += [
        {"target_label": "job", "replacement": f"{namespace}/{name}"},
        {"target_label": "endpoint", "replacement": port},
        # Sharding, as the config reloader leaves it for the only shard.
        {
            "source_labels": ["__address__"],
            "target_label": "__tmp_hash",
            "modulus": 1,
            "action": "hashmod",
        },
        {"source_labels": ["__tmp_hash"], "regex": "0", "action": "keep"},
    ]
    job: dict[str, Any] = {
        "job_name": f"podMonitor/{namespace}/{name}/0",
        "honor_labels": bool(endpoint.get("honorLabels", False)),
        "static_configs": [
            {
                "targets": [pod["__address__"]],
                "labels": {k: v for k, v in pod.items() if k != "__address__"},
            }
            for pod in pods
        ],
        "relabel_configs": relabel,
    }
    if "path" in endpoint:
        job["metrics_path"] = endpoint["path"]
    if "scrapeTimeout" in endpoint:
        job["scrape_timeout"] = endpoint["scrapeTimeout"]
    return job


def discovered_pod(
    rollout: dict[str, Any], pod_hash: str, address: str, port_name: str
) -> dict[str, str]:
    """The meta labels Kubernetes' pod discovery gives the Rollout's pod `pod_hash` (one target
    per container port: the one named `port_name`), reachable at `address`."""
    template = rollout["spec"]["template"]
    (container,) = template["spec"]["containers"]
    ports = [p for p in container.get("ports", []) if p.get("name") == port_name]
    assert ports, f"the Rollout's container has no port named {port_name!r} (the PodMonitor's)"
    labels = {**template["metadata"]["labels"], "rollouts-pod-template-hash": pod_hash}
    name = rollout["metadata"]["name"]
    meta = {
        "__address__": address,
        "__meta_kubernetes_namespace": rollout["metadata"]["namespace"],
        "__meta_kubernetes_pod_name": f"{name}-{pod_hash}-x7k2q",
        "__meta_kubernetes_pod_ip": address.split(":")[0],
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_ready": "true",
        "__meta_kubernetes_pod_controller_kind": "ReplicaSet",
        "__meta_kubernetes_pod_controller_name": f"{name}-{pod_hash}",
        "__meta_kubernetes_pod_container_name": container["name"],
        "__meta_kubernetes_pod_container_port_name": port_name,
        "__meta_kubernetes_pod_container_port_number": str(ports[0]["containerPort"]),
        "__meta_kubernetes_pod_container_port_protocol": ports[0].get("protocol", "TCP"),
    }
    for key, value in labels.items():
        meta[f"__meta_kubernetes_pod_label_{sanitized(key)}"] = value
        meta[f"__meta_kubernetes_pod_labelpresent_{sanitized(key)}"] = "true"
    return meta


def seconds(duration: str) -> float:
    """A Prometheus or Argo duration (`15s`, `2m`, `1h30m`) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


# --------------------------------------------------------------------------------------------
# Argo Rollouts: argument substitution, expr-lang conditions, AnalysisRun phases.
# --------------------------------------------------------------------------------------------
def resolve_metric(metric: dict[str, Any], args: dict[str, str]) -> dict[str, Any]:
    """ResolveMetricArgs: `{{ args.x }}` substituted (JSON-escaped) in the marshalled metric."""
    missing = sorted({m[1] for m in ARG.finditer(json.dumps(metric))} - set(args))
    assert not missing, f"metric {metric['name']}: arguments without a value: {missing}"
    text = ARG.sub(lambda m: json.dumps(args[m[1]])[1:-1], json.dumps(metric))
    assert "{{" not in text, f"metric {metric['name']}: unresolved template in {text}"
    return json.loads(text)


class ExprUnsupported(Exception):
    """An expression outside the subset this test evaluates: the test must fail, loudly."""


class ExprRuntimeError(Exception):
    """What expr-lang fails on at run time (Argo marks the measurement Error)."""


TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[<>!()\[\],]))"
)
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "isNaN": lambda x: isinstance(x, float) and math.isnan(x),
}


def evaluate_condition(expression: str, result: Any) -> bool:
    """Argo's EvalCondition for the expr-lang subset the templates use: `result`, numbers,
    `true`/`false`, `len()`, `isNaN()`, indexing, `!`/`not`, comparisons, `&&`/`and`,
    `||`/`or` (short-circuit, expr-lang's precedence) and parentheses."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(expression.rstrip()):
        match = TOKEN.match(expression, position)
        if match is None or match.end() == position:
            raise ExprUnsupported(f"{expression!r}: cannot read {expression[position:]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match[kind]))
        position = match.end()
    tokens.append(("end", ""))
    index = 0

    def peek() -> tuple[str, str]:
        return tokens[index]

    def take(value: str | None = None) -> tuple[str, str]:
        nonlocal index
        token = tokens[index]
        if value is not None and token[1] != value:
            raise ExprUnsupported(f"{expression!r}: expected {value!r}, found {token[1]!r}")
        index += 1
        return token

    # Each parser returns a thunk, so `&&` and `||` can short-circuit as expr-lang does.
    def parse_or() -> Callable[[], Any]:
        left = parse_and()
        while peek()[1] in ("||", "or"):
            take()
            right, previous = parse_and(), left
            left = lambda a=previous, b=right: boolean(a()) or boolean(b())  # noqa: E731
        return left

    def parse_and() -> Callable[[], Any]:
        left = parse_comparison()
        while peek()[1] in ("&&", "and"):
            take()
            right, previous = parse_comparison(), left
            left = lambda a=previous, b=right: boolean(a()) and boolean(b())  # noqa: E731
        return left

    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        ">": lambda a, b: a > b,
        "<=": lambda a, b: a <= b,
        ">=": lambda a, b: a >= b,
    }

    def parse_comparison() -> Callable[[], Any]:
        left = parse_unary()
        if peek()[1] in comparisons:
            operator = comparisons[take()[1]]
            right = parse_unary()
            if peek()[1] in comparisons:
                raise ExprUnsupported(f"{expression!r}: chained comparison")
            return lambda: compare(operator, left(), right())
        return left

    def parse_unary() -> Callable[[], Any]:
        if peek()[1] in ("!", "not"):
            take()
            operand = parse_unary()
            return lambda: not boolean(operand())
        return parse_postfix()

    def parse_postfix() -> Callable[[], Any]:
        value = parse_primary()
        while peek()[1] == "[":
            take()
            position_of = parse_or()
            take("]")
            value = lambda v=value, i=position_of: item(v(), i())  # noqa: E731
        return value

    def parse_primary() -> Callable[[], Any]:
        kind, text = take()
        if kind == "number":
            number = float(text) if re.search(r"[.eE]", text) else int(text)
            return lambda: number
        if text == "(":
            inner = parse_or()
            take(")")
            return inner
        if text in ("true", "false"):
            return lambda: text == "true"
        if text == "result":
            return lambda: result
        if kind == "name" and text in FUNCTIONS and peek()[1] == "(":
            take("(")
            arguments = [parse_or()]
            while peek()[1] == ",":
                take()
                arguments.append(parse_or())
            take(")")
            function = FUNCTIONS[text]
            return lambda: function(*(argument() for argument in arguments))
        raise ExprUnsupported(f"{expression!r}: {text!r} is outside the supported subset")

    tree = parse_or()
    if peek()[0] != "end":
        raise ExprUnsupported(f"{expression!r}: unexpected {peek()[1]!r}")
    value = tree()
    if not isinstance(value, bool):
        raise ExprRuntimeError(f"{expression!r}: expected bool, got {value!r}")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ExprRuntimeError(f"{value!r} is not a bool")
    return value


def compare(operator: Callable[[Any, Any], bool], left: Any, right: Any) -> bool:
    numbers = (int, float)
    if not (isinstance(left, numbers) and isinstance(right, numbers)):
        raise ExprRuntimeError(f"cannot compare {left!r} and {right!r}")
    return operator(left, right)


def item(container: Any, position: Any) -> Any:
    if not isinstance(container, list) or not isinstance(position, int):
        raise ExprRuntimeError(f"cannot index {container!r} with {position!r}")
    if not -len(container) <= position < len(container):
        raise ExprRuntimeError(f"index {position} out of range (len {len(container)})")
    return container[position]


def measurement_phase(metric: dict[str, Any], result: Any) -> str:
    """evaluate.EvaluateResult: the phase of one measurement whose value is `result`."""
    success, failure = metric.get("successCondition", ""), metric.get("failureCondition", "")
    try:
        succeeded = evaluate_condition(success, result) if success else False
        failed = evaluate_condition(failure, result) if failure else False
    except ExprRuntimeError:
        return "Error"
    if not success and not failure:
        return "Successful"
    if success and not failure:
        failed = not succeeded
    if failure and not success:
        succeeded = not failed
    if failed:
        return "Failed"
    return "Successful" if succeeded else "Inconclusive"


WORSE = ["Successful", "Running", "Pending", "Inconclusive", "Error", "Failed"]
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4


@dataclass
class MetricResult:
    metric: dict[str, Any]
    measured: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    consecutive_errors: int = 0
    phase: str = "Pending"

    def record(self, phase: str) -> None:
        self.measured += 1
        self.counts[phase] = self.counts.get(phase, 0) + 1
        self.consecutive_errors = self.consecutive_errors + 1 if phase == "Error" else 0

    def bad(self) -> str:
        """assessMetricFailureInconclusiveOrError: later checks win, as in Argo."""
        metric, phase = self.metric, ""
        failure_limit = int(metric.get("failureLimit", 0))
        if failure_limit >= 0 and self.counts.get("Failed", 0) > failure_limit:
            phase = "Failed"
        if self.counts.get("Inconclusive", 0) > int(metric.get("inconclusiveLimit", 0)):
            phase = "Inconclusive"
        limit = int(metric.get("consecutiveErrorLimit", DEFAULT_CONSECUTIVE_ERROR_LIMIT))
        if self.consecutive_errors > limit:
            phase = "Error"
        return phase

    def assess(self, terminating: bool) -> str:
        """assessMetricStatus (no consecutiveSuccessLimit: refused in analysis_run_phase)."""
        if self.phase in ("Successful", "Failed", "Error", "Inconclusive"):
            return self.phase
        if self.measured == 0:
            return "Successful" if terminating else "Pending"
        if bad := self.bad():
            return bad
        count = int(self.metric.get("count", 0)) or (None if self.metric.get("interval") else 1)
        if count is not None and self.measured >= count:
            return "Successful"
        return "Successful" if terminating else "Running"


def analysis_run_phase(metrics: list[dict[str, Any]], phases: dict[str, str]) -> str:
    """The phase an AnalysisRun of `metrics` ends in when every measurement of each metric has
    the phase in `phases` (the canary keeps behaving as measured): measurements at
    initialDelay + k * interval, each assessed as Argo's controller does, the run terminated
    once a metric completes Failed, Error or Inconclusive (assessRunStatus)."""
    for metric in metrics:
        unsupported = {"consecutiveSuccessLimit", "dryRun"} & set(metric)
        assert not unsupported, f"{metric['name']}: {sorted(unsupported)} not simulated"
    results = {m["name"]: MetricResult(m) for m in metrics}
    times: set[float] = set()
    for metric in metrics:
        count = int(metric.get("count", 1))
        start = seconds(metric.get("initialDelay", "0s"))
        step = seconds(metric.get("interval", "0s"))
        times |= {start + k * step for k in range(count)}
    terminating = False
    for now in sorted(times):
        for result in results.values():
            metric = result.metric
            start = seconds(metric.get("initialDelay", "0s"))
            step = seconds(metric.get("interval", "0s"))
            due = start + result.measured * step
            if result.phase in ("Pending", "Running") and due <= now and not terminating:
                result.record(phases[metric["name"]])
        for result in results.values():
            result.phase = result.assess(terminating)
        if not terminating and any(
            r.phase in ("Failed", "Error", "Inconclusive") for r in results.values()
        ):
            terminating = True
            for result in results.values():
                result.phase = result.assess(terminating)
        if all(
            r.phase in ("Successful", "Failed", "Error", "Inconclusive") for r in results.values()
        ):
            break
    completed = [r.phase for r in results.values()]
    assert all(phase in WORSE for phase in completed)
    return max(completed, key=WORSE.index)


def test_argo_rules_as_simulated_here() -> None:
    """The decision rule above on the templates' shapes (no service needed)."""
    traffic = {
        "name": "t",
        "interval": "60s",
        "count": 5,
        "inconclusiveLimit": 2,
        "successCondition": "len(result) > 0 && result[0] >= 20",
        "failureCondition": "false",
    }
    rate = {
        "name": "r",
        "interval": "60s",
        "count": 5,
        "failureLimit": 1,
        "inconclusiveLimit": 2,
        "successCondition": "len(result) > 0 && !isNaN(result[0]) && result[0] <= 0.01",
        "failureCondition": "len(result) > 0 && result[0] > 0.01",
    }
    assert measurement_phase(traffic, [25.0]) == "Successful"
    assert measurement_phase(traffic, [3.0]) == "Inconclusive"
    assert measurement_phase(traffic, []) == "Inconclusive"
    assert measurement_phase(rate, [math.nan]) == "Inconclusive"
    assert measurement_phase(rate, []) == "Inconclusive"
    assert measurement_phase(rate, [0.5]) == "Failed"
    assert measurement_phase({**rate, "successCondition": "result[0] < 1"}, []) == "Error"
    with pytest.raises(ExprUnsupported):
        measurement_phase({**rate, "successCondition": "result[0] + 1 > 2"}, [1.0])
    both = [traffic, rate]
    assert analysis_run_phase(both, {"t": "Successful", "r": "Successful"}) == "Successful"
    assert analysis_run_phase(both, {"t": "Successful", "r": "Failed"}) == "Failed"
    assert analysis_run_phase(both, {"t": "Inconclusive", "r": "Failed"}) == "Failed"
    assert analysis_run_phase(both, {"t": "Inconclusive", "r": "Inconclusive"}) == "Inconclusive"
    assert analysis_run_phase(both, {"t": "Successful", "r": "Error"}) == "Error"


# --------------------------------------------------------------------------------------------
# The services, Prometheus and the load generator.
# --------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bool(response.status == 200)


def wait_for(what: str, check: Callable[[], bool], processes: list[subprocess.Popen]) -> None:
    """Poll `check` until it holds; fail at once if a process died, or after 180 s."""
    deadline = time.monotonic() + 180
    while True:
        for process in processes:
            if process.poll() is not None:
                pytest.fail(f"{process.args} exited {process.returncode} while waiting: {what}")
        with contextlib.suppress(OSError, ValueError, KeyError):
            if check():
                return
        assert time.monotonic() < deadline, f"not within 180 s: {what}"
        time.sleep(0.5)


@dataclass
class Pod:
    """One `bentoml serve`, standing for the Rollout's pod with this pod-template hash."""

    role: str
    pod_hash: str
    api_key: str
    port: int = 0
    process: subprocess.Popen | None = None
    sent: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def running(command: list[str], log: Path, **options: Any) -> Iterator[subprocess.Popen]:
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, **options)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def request_bodies(project: Project) -> list[bytes]:
    """Prediction requests of a few records each, from the bake's test split (no target)."""
    script = (
        "import json, sys, pandas as pd, yaml\n"
        "target = yaml.safe_load(open('schema.yaml'))['target']\n"
        "frame = pd.read_parquet('data/processed/test.parquet').drop(columns=[target])\n"
        "print(frame.head(120).to_json(orient='records'))\n"
    )
    records = json.loads(project.run("uv", "run", "python", "-c", script).stdout)
    return [json.dumps({"records": records[i : i + 3]}).encode() for i in range(0, 120, 3)]


def send(pod: Pod, body: bytes, expected: int) -> None:
    request = urllib.request.Request(
        f"{pod.url}/v1/predict",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {CURRENT_KEY}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    pod.sent += 1
    assert status == expected, f"{pod.role}: /v1/predict answered {status}, expected {expected}"


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, query: str, at: float | None = None) -> dict[str, Any]:
        form = {"query": query, **({"time": f"{at:.3f}"} if at is not None else {})}
        request = urllib.request.Request(
            f"{self.url}/api/v1/query", data=urllib.parse.urlencode(form).encode()
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            pytest.fail(f"Prometheus refused the query ({error.code}): {error.read()!r}\n{query}")
        assert answer["status"] == "success", answer
        return dict(answer["data"])

    def value(self, query: str) -> Any:
        """What Argo's Prometheus provider hands the conditions (processResponse)."""
        data = self.query(query)
        kind, result = data["resultType"], data["result"]
        if kind == "scalar":
            return float(result[1])
        if kind == "vector":
            return [float(sample["value"][1]) for sample in result]
        if kind == "matrix":
            return [float(value) for series in result for _, value in series["values"]]
        pytest.fail(f"Argo's Prometheus provider does not support a {kind} result: {query}")

    def predict_requests(self, pod: Pod) -> float:
        data = self.query(
            f'sum(bentoml_service_request_total{{rollouts_pod_template_hash="{pod.pod_hash}",'
            f' exported_endpoint="/v1/predict"}})'
        )
        return float(data["result"][0]["value"][1]) if data["result"] else 0.0


def verdict(
    prometheus: Prometheus, template: dict[str, Any], args: dict[str, str]
) -> tuple[str, dict[str, tuple[Any, str]]]:
    """The AnalysisRun's phase for these args, and each metric's value and measurement phase."""
    values = {a["name"]: a["value"] for a in template["spec"]["args"] if "value" in a}
    metrics = [resolve_metric(m, {**values, **args}) for m in template["spec"]["metrics"]]
    measured: dict[str, tuple[Any, str]] = {}
    for metric in metrics:
        provider = metric["provider"]
        assert set(provider) == {"prometheus"}, f"{metric['name']}: only Prometheus is queried"
        assert provider["prometheus"]["address"] == args["prometheus-address"]
        value = prometheus.value(provider["prometheus"]["query"])
        try:
            phase = measurement_phase(metric, value)
        except ExprUnsupported as error:
            pytest.fail(f"metric {metric['name']}: cannot evaluate the condition: {error}")
        measured[metric["name"]] = (value, phase)
    phases = {name: phase for name, (_, phase) in measured.items()}
    return analysis_run_phase(metrics, phases), measured


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (Debian `prometheus`)")
def test_the_analysis_judges_real_canaries_scraped_as_the_operator_scrapes_them(
    exported_project: Project, tmp_path: Path
) -> None:
    assert PROMETHEUS is not None
    project = exported_project
    docs = kustomize(project.path / "deploy/k8s/overlays/production")
    rollout, monitor = one(docs, "Rollout"), one(docs, "PodMonitor")
    template = one(docs, "AnalysisTemplate")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    interval = seconds(endpoint.get("interval", "30s"))
    for metric in template["spec"]["metrics"]:
        for window in re.findall(r"\[(\w+)\]", metric["provider"]["prometheus"]["query"]):
            assert seconds(window) >= SCRAPES_PER_WINDOW * interval, (
                f"{metric['name']}: a [{window}] window holds fewer than {SCRAPES_PER_WINDOW}"
                f" scrapes at the PodMonitor's {endpoint['interval']}"
            )

    pods = [
        Pod("stable", "6d8f7c9b5d", CURRENT_KEY),
        Pod("canary", "7b9c4d6f8e", CURRENT_KEY),
        Pod("broken canary", "5f6e8d7c9b", ROTATED_KEY),
    ]
    stable, canary, broken = pods
    bodies = request_bodies(project)
    with contextlib.ExitStack() as stack:
        for pod in pods:
            # Each pod has its own BENTOML_HOME (an emptyDir in the Rollout): BentoML keeps its
            # Prometheus multiprocess files there, so pods sharing one would mix their metrics.
            home = tmp_path / f"home-{pod.pod_hash}"
            shutil.copytree(project.path / ".bentoml" / "models", home / "models")
            pod.port = free_port()
            pod.process = stack.enter_context(
                running(
                    ["uv", "run", "bentoml", "serve", "--port", str(pod.port)],
                    tmp_path / f"serve-{pod.pod_hash}.log",
                    cwd=project.path,
                    env={**project.env, "BENTOML_HOME": str(home), "SERVICE_API_KEY": pod.api_key},
                )
            )
        targets = [
            discovered_pod(rollout, p.pod_hash, f"127.0.0.1:{p.port}", endpoint["port"])
            for p in pods
        ]
        job = operator_scrape_job(monitor, targets)
        job["scrape_interval"] = f"{SCRAPE_INTERVAL_SECONDS}s"  # time compressed, see above
        config = tmp_path / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [job],
                }
            ),
            encoding="utf-8",
        )
        web = f"127.0.0.1:{free_port()}"
        process = stack.enter_context(
            running(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address={web}",
                ],
                tmp_path / "prometheus.log",
            )
        )
        prometheus = Prometheus(f"http://{web}")
        processes = [process, *(p.process for p in pods if p.process)]
        for pod in pods:
            wait_for(f"{pod.role} ready", lambda p=pod: answers(f"{p.url}/readyz"), processes)
        wait_for("Prometheus ready", lambda: answers(f"http://{web}/-/ready"), processes)

        def all_up() -> bool:
            data = prometheus.query(
                f'up{{job="{monitor["metadata"]["namespace"]}/{monitor["metadata"]["name"]}"}}'
            )
            return sorted(s["value"][1] for s in data["result"]) == ["1"] * len(pods)

        wait_for("every pod scraped", all_up, processes)

        def scraped(*chosen: Pod) -> None:
            """Wait until Prometheus has stored every prediction request sent so far."""
            for pod in chosen:
                wait_for(
                    f"{pod.role}'s {pod.sent} requests scraped",
                    lambda p=pod: prometheus.predict_requests(p) == p.sent,
                    processes,
                )

        address = prometheus.url
        namespace = rollout["metadata"]["namespace"]

        def judge(candidate: Pod) -> tuple[str, dict[str, tuple[Any, str]]]:
            args = {
                "namespace": namespace,
                "canary-hash": candidate.pod_hash,
                "stable-hash": stable.pod_hash,
                "prometheus-address": address,
            }
            return verdict(prometheus, template, args)

        # Before the canary gets traffic (the stable pods serve every request): no verdict.
        for body in bodies:
            send(stable, body, 200)
        scraped(stable)
        phase, measured = judge(canary)
        assert phase == "Inconclusive", measured

        # The stored series carry the operator's labels; BentoML's route is exported_endpoint.
        series = prometheus.query(
            f'bentoml_service_request_total{{pod=~".*-{stable.pod_hash}-.*"}}'
        )["result"]
        labels = next(
            s["metric"] for s in series if s["metric"].get("exported_endpoint") == "/v1/predict"
        )
        assert labels["endpoint"] == endpoint["port"]
        assert labels["namespace"] == namespace and labels["container"] == "service"
        assert labels["job"] == f"{namespace}/{monitor['metadata']['name']}"
        assert labels["rollouts_pod_template_hash"] == stable.pod_hash

        # Every request now reaches the stable pod and both canaries alike. The first round
        # creates every series (a counter's first sample is not an increase), the second is
        # what the analysis measures.
        for _ in range(2):
            for body in bodies:
                send(stable, body, 200)
                send(canary, body, 200)
                send(broken, body, 401)
            scraped(*pods)
        phase, measured = judge(canary)
        assert phase == "Successful", measured
        phase, measured = judge(broken)
        assert phase == "Failed", measured
        assert measured["excess-error-rate"][1] == "Failed", measured
