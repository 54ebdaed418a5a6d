"""The prediction service against `mlflow models serve` on the same model, in one run.

    uv run python benchmarks/serving.py [--project DIR] [--requests 2000] [--keep DIR]

Bakes the defaults (or uses a baked, reproduced project given with --project), runs the
pipeline, exports the model the gate approved, and starts on loopback:
  (a) this service: `bentoml serve` (all validation, metrics and the prediction log's code path
      on), POST /v1/predict_proba with one record;
  (b) `mlflow models serve --env-manager local` (2 workers) on the same model as MLflow logged
      it, POST /invocations with the same record;
  (c) in-process scoring of one record: the service's path (`Scorer.score_records`, through
      the model's numpy replica, fastpath.py) and the pipeline's `predict_proba` on a prepared
      one-row frame: the floors no server can beat.
The same client (keep-alive connections, one per thread) sends a fixed number of requests:
single-record latency p50/p95/p99 at concurrency 1, throughput at concurrency 8 and 32, errors,
and each server's peak RSS (its whole process tree). Then the installed size of the Bento's
requirements (requirements/serving.txt) against the development environment.
Targets: (a) >= 5x the throughput of (b) at concurrency 32, p50 < 3 ms at concurrency 1, no
errors. Figures, not a test: shared machines are noisy.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parents[1]


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(project: Path | None, scratch: Path, env: dict[str, str]) -> Path:
    if project is None:
        from cookiecutter.main import cookiecutter

        project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(scratch)))
        run(["git", "init", "-q"], project, env)
        run(["uv", "sync", "--locked", "--compile-bytecode"], project, env)
        run(["uv", "run", "dvc", "repro"], project, env)
    return project


class Server:
    """A server process on a port; its peak RSS (process tree) sampled until stopped."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str], port: int) -> None:
        import psutil

        self.port = port
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._psutil = psutil
        self.peak_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                root = self._psutil.Process(self.process.pid)
                rss = sum(proc.memory_info().rss for proc in [root, *root.children(recursive=True)])
                self.peak_rss = max(self.peak_rss, rss)
            except self._psutil.Error:
                pass
            time.sleep(0.2)

    def wait(self, path: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"server exited with {self.process.returncode}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", path)
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        sys.exit(f"server on port {self.port} not ready within {timeout:.0f} s")

    def stop(self) -> None:
        self._stop.set()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def load(port: int, path: str, body: bytes, requests: int, concurrency: int) -> dict[str, Any]:
    """Send `requests` POSTs from `concurrency` threads, each with its own keep-alive
    connection; latencies in ms, throughput in requests per second."""
    local = threading.local()
    headers = {"Content-Type": "application/json"}

    def one(_: int) -> tuple[float, bool]:
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start = time.perf_counter()
        try:
            local.connection.request("POST", path, body=body, headers=headers)
            response = local.connection.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            local.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            ok = False
        return (time.perf_counter() - start) * 1000, ok

    for _ in range(min(50, requests)):  # warm up each code path
        one(0)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - started
    latencies = sorted(latency for latency, _ in results)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {
        "rps": requests / elapsed,
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "errors": sum(not ok for _, ok in results),
    }


def in_process_ms(project: Path, env: dict[str, str], package: str) -> tuple[float, float]:
    """Median ms per record: the service's scoring path, and the pipeline on a prepared frame."""
    code = (
        "import time, statistics\n"
        f"from {package}.serving.predict import load_scorer\n"
        "from " + package + ".core.features import prepare_frame\n"
        "s, _ = load_scorer(None)\n"
        "x = prepare_frame(s.example(), s.info.spec)\n"
        "r = [s.example_record()]\n"
        "def median(f):\n"
        "    f(); t = []\n"
        "    for _ in range(300):\n"
        "        a = time.perf_counter(); f(); t.append(time.perf_counter() - a)\n"
        "    return statistics.median(t) * 1000\n"
        "print(median(lambda: s.score_records(r, True)),\n"
        "      median(lambda: s.model.predict_proba(x)))\n"
    )
    service, pipeline = run(["uv", "run", "python", "-c", code], project, env).split()
    return float(service), float(pipeline)


def directory_mb(path: Path) -> float:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file()) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a baked project after `dvc repro`")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args()
    scratch = Path(args.keep or tempfile.mkdtemp(prefix="serving-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "BENTOML_HOME": str(scratch / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.pop("VIRTUAL_ENV", None)
    project = prepare(args.project, scratch, env)
    answers = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]
    package = answers["package_name"]
    run(["uv", "run", package, "export", "--proposed"], project, env)
    example = ["uv", "run", "python", "-m", f"{package}.serving.predict", "example"]
    body = json.loads(run(example, project, env))
    record = body["records"][0]
    tracking = json.loads((project / "reports/tracking.json").read_text())
    role = json.loads((project / "reports/gate.json").read_text())["proposed_model"]["role"]
    model_uri = tracking["runs"][role]["model_uri"]
    mlflow_body = {"dataframe_split": {"columns": list(record), "data": [list(record.values())]}}

    rows: dict[str, dict[str, Any]] = {}
    servers = {
        "bentoml (this service)": (
            ["uv", "run", "bentoml", "serve", "--port", "{port}"],
            "/readyz",
            "/v1/predict_proba",
            json.dumps(body).encode(),
        ),
        "mlflow models serve": (
            [
                "uv",
                "run",
                "mlflow",
                "models",
                "serve",
                "-m",
                model_uri,
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--workers",
                "2",
            ],
            "/ping",
            "/invocations",
            json.dumps(mlflow_body).encode(),
        ),
    }
    for name, (command, ready, path, payload) in servers.items():
        port = free_port()
        server = Server([part.format(port=port) for part in command], project, env, port)
        try:
            server.wait(ready)
            single = load(port, path, payload, args.requests // 2, 1)
            c8 = load(port, path, payload, args.requests, 8)
            c32 = load(port, path, payload, args.requests, 32)
        finally:
            server.stop()
        rows[name] = {
            "p50": single["p50"],
            "p95": single["p95"],
            "p99": single["p99"],
            "rps1": single["rps"],
            "rps8": c8["rps"],
            "rps32": c32["rps"],
            "errors": single["errors"] + c8["errors"] + c32["errors"],
            "rss": server.peak_rss / 1e6,
        }
    floor = in_process_ms(project, env, package)

    print(f"\nserving benchmark: {args.requests} requests per load level, one record each\n")
    header = f"{'server':<24} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'rps c1':>7} "
    header += f"{'rps c8':>7} {'rps c32':>8} {'errors':>6} {'peak RSS MB':>11}"
    print(header)
    for name, row in rows.items():
        print(
            f"{name:<24} {row['p50']:7.2f} {row['p95']:7.2f} {row['p99']:7.2f} {row['rps1']:7.0f} "
            f"{row['rps8']:7.0f} {row['rps32']:8.0f} {row['errors']:6d} {row['rss']:11.0f}"
        )
    print(f"{'in-process, service path':<24} {floor[0]:7.3f}")
    print(f"{'in-process, pipeline':<24} {floor[1]:7.3f}")
    ours, theirs = rows["bentoml (this service)"], rows["mlflow models serve"]
    print(
        f"\nratios (this service / mlflow): throughput c32 {ours['rps32'] / theirs['rps32']:.1f}x "
        f"(target >= 5x), c8 {ours['rps8'] / theirs['rps8']:.1f}x; "
        f"p50 c1 {ours['p50'] / theirs['p50']:.2f} (target p50 < 3 ms: {ours['p50']:.2f} ms)"
    )

    serving_env = scratch / "serving-env"
    shutil.rmtree(serving_env, ignore_errors=True)
    run(["uv", "venv", "-q", "-p", sys.executable, str(serving_env)], project, env)
    run(
        [
            "uv",
            "pip",
            "install",
            "-q",
            "--python",
            str(serving_env / "bin/python"),
            "-r",
            "requirements/serving.txt",
        ],
        project,
        env,
    )
    development = Path(env.get("UV_PROJECT_ENVIRONMENT", project / ".venv"))
    print(
        f"installed size: Bento requirements {directory_mb(serving_env):.0f} MB, "
        f"development environment {directory_mb(development):.0f} MB"
    )
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
