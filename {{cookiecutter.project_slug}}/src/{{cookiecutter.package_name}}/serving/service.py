"""The prediction service (BentoML 1.4): `uv run bentoml serve` from the project's root.

It serves the model `export` last pinned into BentoML's model store ($BENTOML_HOME, which
`make serve` sets to the checkout's .bentoml/ where `export` writes; or $BENTO_MODEL_TAG), and
refuses one another project or checkout exported. `uv run bentoml build` (`make bento`)
packages exactly that one: the Bento records the model's tag, so a pod restart never switches
models. Endpoints, headers, metrics and the prediction log are listed in docs/serving.md. The
request model is derived from the data contract the model was trained under, so a field's
name, type, range, allowed values and nullability are checked before the model runs (fields
that are not features follow serve.extra_columns, as `predict` does); what pydantic cannot say
(a category the model never saw) is checked next and answered with a 422 naming the record and
field, or served and counted. A body that is not JSON is a 415, one larger than the largest
valid request a 413, before BentoML reads it.

No `from __future__ import annotations` here: BentoML reads the API methods' annotations to
build the request schema, and the record model is created at import time.
"""

import hmac
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Annotated, Any

import bentoml
from pydantic import Field
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from {{ cookiecutter.package_name }}.core.contract import load_contract
from {{ cookiecutter.package_name }}.core.errors import PipelineError
from {{ cookiecutter.package_name }}.serving.export import MODEL_NAME
from {{ cookiecutter.package_name }}.serving.scorer import (
    BENTOML_HOME_ENV,
    BUNDLE_FILE,
    CONTRACT_FILE,
    BundleInfo,
    ModelFailedError,
    PredictionLog,
    RejectedRecordsError,
    Scorer,
    check_project,
    check_store,
    max_body_bytes,
    record_model,
)

logger = logging.getLogger("bentoml.service")

MODEL_TAG_ENV = "BENTO_MODEL_TAG"
API_KEY_ENV = "SERVICE_API_KEY"
# Probes and Prometheus must work without the key.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
PREDICT_PATHS = ("/v1/predict", "/v1/predict_proba")
# Paths the middleware answers itself (BentoML has no route for them).
GATE_PATHS = frozenset({"/v1/info"})
# The `endpoint` label of BentoML's request metrics for every path no route serves: one series,
# however many random paths are probed (each would otherwise add a series to /metrics forever).
OTHER_ENDPOINT = "other"


def _pinned_model() -> Any:
    tag = os.environ.get(MODEL_TAG_ENV) or f"{MODEL_NAME}:latest"
    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        store = os.environ.get(BENTOML_HOME_ENV) or "~/bentoml"
        raise SystemExit(
            f"error: no model {tag} in BentoML's model store ({store}). Pin one first: "
            f"`uv run {MODEL_NAME} export --proposed` (the model the gate approved) or "
            f"`uv run {MODEL_NAME} export --alias champion`."
        ) from None


try:
    check_store()
    PINNED = _pinned_model()
    INFO = BundleInfo.model_validate_json(Path(PINNED.path, BUNDLE_FILE).read_text("utf-8"))
    check_project(INFO, str(PINNED.tag))
except PipelineError as error:
    raise SystemExit(f"error: {error}") from None
CONTRACT = load_contract(Path(PINNED.path, CONTRACT_FILE))
Record = record_model(CONTRACT, INFO.extra_columns)
Records = Annotated[list[Record], Field(min_length=1, max_length=INFO.max_records)]  # type: ignore[valid-type]
MAX_BODY_BYTES = max_body_bytes(CONTRACT, INFO.max_records, INFO.extra_columns)
MODEL_HEADERS = [
    (b"x-model-version", INFO.model_version.encode()),
    (b"x-model-kind", INFO.model_kind.encode()),
    (b"x-contract-sha256", INFO.contract_sha256.encode()),
]


class Metrics:
    """The service's own Prometheus metrics (names fixed by docs/serving.md; the deploy
    analysis, alert rules and dashboard query them). Created on first use, inside the worker,
    after BentoML has set up prometheus_client's multiprocess directory."""

    _instance: "Metrics | None" = None

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.predictions = Counter(
            "model_predictions", "Predictions made.", ["model_version", "predicted"]
        )
        self.fallbacks = Counter(
            "model_fallback", "Requests answered by the fallback model.", ["model_version"]
        )
        self.rejected = Counter(
            "model_rejected_records", "Requests refused for their input.", ["reason"]
        )
        self.unseen = Counter(
            "model_unseen_categories", "Categories the model never saw, served.", ["column"]
        )
        self.out_of_range = Counter(
            "model_out_of_range_values",
            "Numeric values outside the range seen in training (schema.yaml observed), served.",
            ["column"],
        )
        buckets = INFO.prediction_buckets()
        about = ("model_prediction_value", "Predicted values (regression).", ["model_version"])
        self.values = Histogram(*about, buckets=buckets) if buckets else Histogram(*about)

    @classmethod
    def get(cls) -> "Metrics":
        if cls._instance is None:
            cls._instance = Metrics()
        return cls._instance


ERROR_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "title": "Error",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "RequestError": {
        "type": "object",
        "title": "RequestError",
        "description": "The request is not one the contract accepts: `detail[].loc` names "
        "the record and field (`['records', 3, 'age']`).",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "detail": {"type": "array", "items": {"$ref": "#/components/schemas/ErrorDetail"}},
        },
    },
    "ErrorDetail": {
        "type": "object",
        "title": "ErrorDetail",
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            "msg": {"type": "string"},
            "type": {"type": "string"},
            "url": {"type": "string"},
        },
    },
    "RejectedRecords": {
        "type": "object",
        "title": "RejectedRecords",
        "required": ["error", "problems"],
        "properties": {
            "error": {"type": "string"},
            "problems": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}},
        },
    },
    "Problem": {
        "type": "object",
        "title": "Problem",
        "required": ["row", "field", "message"],
        "properties": {
            "row": {"type": "integer"},
            "field": {"type": "string"},
            "message": {"type": "string"},
        },
    },
}
ERROR_RESPONSES = {
    "400": ("RequestError", "Malformed JSON, or records the request schema refuses"),
    "401": ("Error", "No or a wrong API key (when SERVICE_API_KEY is set)"),
    "404": ("Error", "predict_proba of a regression model"),
    "413": ("Error", "A body larger than the largest valid request"),
    "415": ("Error", "A body that is not application/json"),
    "422": ("RejectedRecords", "A category the model never saw (unseen_categories: error)"),
    "500": ("Error", "The model and its fallback failed"),
}


def openapi_document() -> dict[str, Any]:
    """BentoML's OpenAPI document with the error bodies this service really sends (BentoML's
    own says `detail` is a string and gives the 4xx responses no schema)."""
    # bentoml.service turns the class into a Service; its stubs still describe the class.
    spec = Predictor.openapi_spec.asdict()  # type: ignore[attr-defined]
    spec.setdefault("components", {}).setdefault("schemas", {}).update(ERROR_SCHEMAS)
    for route in PREDICT_PATHS:
        operation = spec["paths"][route]["post"]
        responses = {str(status): body for status, body in operation["responses"].items()}
        for status, (schema, description) in ERROR_RESPONSES.items():
            reference = {"$ref": f"#/components/schemas/{schema}"}
            responses[status] = {
                "description": description,
                "content": {"application/json": {"schema": reference}},
            }
        operation["responses"] = responses
    return spec


def endpoint_label(scope: Scope) -> str:
    """The path of the route that serves a request (a mount's prefix for a file under it), or
    OTHER_ENDPOINT when none does."""
    from starlette.routing import Match

    path = scope["path"]
    if path in GATE_PATHS:
        return path
    for route in getattr(getattr(scope.get("app"), "router", None), "routes", ()):
        if route.matches(scope)[0] is not Match.NONE:
            return getattr(route, "path", path) or path
    return OTHER_ENDPOINT


def bound_endpoint_labels() -> None:
    """Make BentoML's request metrics label a request by its route, not its raw path.

    BentoML labels `bentoml_service_request_*` with the request's path, so every distinct path
    ever requested (a scanner's, a typo's) is a new series that /metrics reports until the
    process ends. Its middleware is wrapped so that it sees the route (OTHER_ENDPOINT for an
    unknown path) while the application still sees the path requested. BentoML offers no
    option for this; tests/test_serving.py fails if a BentoML upgrade bypasses the wrapper.
    """
    from bentoml._internal.server.http import instruments

    base = instruments.RunnerTrafficMetricsMiddleware
    if getattr(base, "bounded_endpoints", False):
        return
    original_key = "{{ cookiecutter.package_name }}.path"

    def restoring(app: ASGIApp) -> ASGIApp:
        async def restore(scope: Scope, receive: Receive, send: Send) -> None:
            if original_key in scope:
                scope = {**scope, "path": scope[original_key]}
                del scope[original_key]
            await app(scope, receive, send)

        return restore

    class BoundedEndpoints(base):  # type: ignore[misc, valid-type]
        bounded_endpoints = True

        def __init__(self, app: ASGIApp, **options: Any) -> None:
            super().__init__(restoring(app), **options)

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                label = endpoint_label(scope)
                if label != scope["path"]:
                    scope = {**scope, "path": label, original_key: scope["path"]}
            await super().__call__(scope, receive, send)

    # Replacing BentoML's own middleware class is the point (its labels are unbounded).
    instruments.RunnerTrafficMetricsMiddleware = BoundedEndpoints  # type: ignore[misc, assignment]


bound_endpoint_labels()


def _media_type(scope: Scope) -> str:
    headers = dict(scope.get("headers") or [])
    return headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None once it passes `limit` bytes (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the application the body already read, then the client's."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _send_json(
    send: Send, status: int, body: Any, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# The service's own ASGI middleware, one job each, added outermost first (BentoML builds them
# into Starlette's stack in the order added). Hand-written because BentoML has no API-key
# option and no GET routes beside its APIs; each is a few lines of ASGI.


class ApiKey:
    """The optional API key (SERVICE_API_KEY): every path but the probes and /metrics needs
    `Authorization: Bearer <key>`. Outermost, so a 401 says nothing about the model."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.key = os.environ.get(API_KEY_ENV, "").encode() or None

    def authorized(self, scope: Scope) -> bool:
        if self.key is None or scope["path"] in OPEN_PATHS:
            return True
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        # Constant-time, so response timing does not reveal how much of a guess was right.
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.authorized(scope):
            challenge = [(b"www-authenticate", b"Bearer")]
            await _send_json(send, 401, {"error": "unauthorized"}, challenge)
            return
        await self.app(scope, receive, send)


class ModelHeaders:
    """The model's headers (version, role, ...) on every response below the API key, and the
    count of predict requests the request model refused (400)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        predicting = scope["path"] in PREDICT_PATHS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *MODEL_HEADERS]
                if predicting and message["status"] == 400:
                    Metrics.get().rejected.labels(reason="invalid_request").inc()
            await send(message)

        await self.app(scope, receive, send_with_headers)


class InfoRoutes:
    """GET /v1/info (the served model, public fields only) and /docs.json (the OpenAPI
    document with the request model's real schema and the service's own error bodies)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.openapi: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            if scope["path"] == "/v1/info":
                await _send_json(send, 200, INFO.public())
                return
            if scope["path"] == "/docs.json":
                if self.openapi is None:
                    self.openapi = json.dumps(openapi_document()).encode()
                await _send_json(send, 200, self.openapi)
                return
        await self.app(scope, receive, send)


class RequestBody:
    """On the predict paths: JSON only (415) and a bounded body (413), read once and replayed
    to the service, so an oversized body never reaches the JSON parser."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    async def refuse(send: Send, status: int, message: str) -> None:
        Metrics.get().rejected.labels(reason="invalid_request").inc()
        await _send_json(send, status, {"error": message})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        predicting = scope["type"] == "http" and scope["path"] in PREDICT_PATHS
        if not (predicting and scope["method"] == "POST"):
            await self.app(scope, receive, send)
            return
        media_type = _media_type(scope)
        if media_type not in ("", "application/json"):
            await self.refuse(
                send,
                415,
                f"Content-Type {media_type[:100]!r} is not supported: send the records as "
                'JSON with "Content-Type: application/json"',
            )
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        body = None
        if not (declared.isdigit() and int(declared) > MAX_BODY_BYTES):
            body = await _read_body(receive, MAX_BODY_BYTES)
        if body is None:
            await self.refuse(
                send,
                413,
                f"the body is larger than {MAX_BODY_BYTES} bytes, more than a request of "
                f"{INFO.max_records} records (serve.max_records) can be: send fewer records "
                "per request",
            )
            return
        await self.app(scope, _replay(body, receive), send)


@bentoml.service(name=MODEL_NAME, traffic={"timeout": 30}, workers=INFO.workers)
class Predictor:
    """Predictions from the pinned model, its fallback when it fails, and their metrics."""

    bundle = bentoml.models.BentoModel(str(PINNED.tag))

    def __init__(self) -> None:
        self.ready = False
        self.scorer = Scorer(Path(self.bundle.path))
        self.log = PredictionLog()
        self.metrics = Metrics.get()
        # Ready only once a prediction has gone through the same path requests take.
        self.scorer.score_records([self.scorer.example_record()])
        self.ready = True

    def __is_ready__(self) -> bool:
        return self.ready

    def _answer(self, records: list[Any], ctx: bentoml.Context, probabilities: bool) -> dict:
        rows = [record.model_dump(by_alias=True) for record in records]
        problems, unseen = self.scorer.check_records(rows)
        if problems:
            self.metrics.rejected.labels(reason="contract").inc()
            ctx.response.status_code = 422
            return {
                "error": str(RejectedRecordsError(problems)),
                "problems": [vars(problem) for problem in problems],
            }
        for column, counts in unseen.items():
            self.metrics.unseen.labels(column=column).inc(sum(counts.values()))
        outside = self.scorer.outside_records(rows)
        for column, count in outside.items():
            self.metrics.out_of_range.labels(column=column).inc(count)
        try:
            scored = self.scorer.score_records(rows, probabilities)
        except ModelFailedError as error:
            logger.error("prediction failed: %s", error)
            ctx.response.status_code = 500
            return {"error": "the model and its fallback failed; see the service log"}
        version = INFO.model_version
        if scored.fallback:
            logger.warning("the model failed; answered with the fallback (%s)", INFO.fallback_kind)
            self.metrics.fallbacks.labels(model_version=version).inc()
        for output in scored.outputs:
            if INFO.is_classification:
                self.metrics.predictions.labels(version, str(output["prediction"])).inc()
            else:
                # The training-target percentile bin: the canary analysis compares their mix.
                bin_ = INFO.prediction_bin(output["prediction"])
                self.metrics.predictions.labels(version, bin_).inc()
                self.metrics.values.labels(model_version=version).observe(output["prediction"])
        request_id = ctx.request.headers.get("x-request-id") or uuid.uuid4().hex
        ctx.response.headers["X-Fallback"] = "true" if scored.fallback else "false"
        ctx.response.headers["X-Request-Id"] = request_id
        self.log.write(request_id, INFO, rows, scored)
        warnings = [
            f"field {column!r}: {', '.join(map(repr, counts))} never seen in training; "
            "the prediction may be unreliable"
            for column, counts in unseen.items()
        ]
        warnings += [
            f"field {column!r}: {count} value{'s' if count > 1 else ''} outside the range seen in "
            f"training ({self.scorer.observed[column][0]:g} to "
            f"{self.scorer.observed[column][1]:g}); the prediction may be unreliable"
            for column, count in outside.items()
        ]
        return {
            "model_version": version,
            "fallback": scored.fallback,
            "predictions": scored.outputs,
            "warnings": warnings,
        }

    # The APIs are coroutines and return a JSONResponse: a request costs ~0.2 ms of model work,
    # so a hop to a worker thread, and BentoML deriving the media type from the output schema
    # on every response (it does for a plain dict), were most of a request's CPU time.
    @bentoml.api(route="/v1/predict")
    async def predict(self, records: Records, ctx: bentoml.Context) -> dict[str, Any]:
        """Predicted label (classification) or value (regression) for each record."""
        return JSONResponse(self._answer(records, ctx, probabilities=False))  # type: ignore[return-value]

    @bentoml.api(route="/v1/predict_proba")
    async def predict_proba(self, records: Records, ctx: bentoml.Context) -> dict[str, Any]:
        """Classification: the predicted label and every class's probability for each record."""
        if not INFO.is_classification:
            ctx.response.status_code = 404
            body = {"error": "a regression model has no probabilities: use /v1/predict"}
        else:
            body = self._answer(records, ctx, probabilities=True)
        return JSONResponse(body)  # type: ignore[return-value]


for middleware in (ApiKey, ModelHeaders, InfoRoutes, RequestBody):
    Predictor.add_asgi_middleware(middleware)  # type: ignore[attr-defined]
