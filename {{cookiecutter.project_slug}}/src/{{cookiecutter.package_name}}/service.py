"""The prediction service (BentoML 1.4): `uv run bentoml serve` from the project's root.

It serves the model `export` last pinned into BentoML's model store (or $BENTO_MODEL_TAG), and
`uv run bentoml build` packages exactly that one: the Bento records the model's tag, so a pod
restart never switches models. Endpoints, headers, metrics and the prediction log are listed in
docs/serving.md. The request model is derived from the data contract the model was trained
under, so a field's name, type, range, allowed values and nullability are checked before the
model runs; what pydantic cannot say (a category the model never saw) is checked next and
answered with a 422 naming the record and field.

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

from {{ cookiecutter.package_name }}.export import MODEL_NAME
from {{ cookiecutter.package_name }}.schema import load_contract
from {{ cookiecutter.package_name }}.serving import (
    BUNDLE_FILE,
    CONTRACT_FILE,
    BundleInfo,
    ModelFailedError,
    PredictionLog,
    RejectedRecordsError,
    Scorer,
    record_model,
)

logger = logging.getLogger("bentoml.service")

MODEL_TAG_ENV = "BENTO_MODEL_TAG"
API_KEY_ENV = "SERVICE_API_KEY"
# Probes and Prometheus must work without the key.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
PREDICT_PATHS = ("/v1/predict", "/v1/predict_proba")


def _pinned_model() -> Any:
    tag = os.environ.get(MODEL_TAG_ENV) or f"{MODEL_NAME}:latest"
    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        raise SystemExit(
            f"error: no model {tag} in BentoML's model store. Pin one first: "
            f"`uv run {MODEL_NAME} export --proposed` (the model the gate approved) or "
            f"`uv run {MODEL_NAME} export --alias champion`."
        ) from None


PINNED = _pinned_model()
INFO = BundleInfo.model_validate_json(Path(PINNED.path, BUNDLE_FILE).read_text(encoding="utf-8"))
Record = record_model(load_contract(Path(PINNED.path, CONTRACT_FILE)))
Records = Annotated[list[Record], Field(min_length=1, max_length=INFO.max_records)]  # type: ignore[valid-type]
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
        self.values = Histogram(
            "model_prediction_value", "Predicted values (regression).", ["model_version"]
        )

    @classmethod
    def get(cls) -> "Metrics":
        if cls._instance is None:
            cls._instance = Metrics()
        return cls._instance


class ServiceGate:
    """ASGI middleware: the optional API key, GET /v1/info, and the model headers on every
    response. Hand-written because BentoML has no API-key option; it is a few lines of ASGI."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.key = os.environ.get(API_KEY_ENV, "").encode() or None

    def _authorized(self, scope: dict[str, Any]) -> bool:
        if self.key is None or scope["path"] in OPEN_PATHS:
            return True
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        # Constant-time, so response timing does not reveal how much of a guess was right.
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)

    @staticmethod
    async def _json(send: Any, status: int, body: Any, extra: list | None = None) -> None:
        payload = json.dumps(body).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *MODEL_HEADERS,
            *(extra or []),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._authorized(scope):
            await self._json(
                send, 401, {"error": "unauthorized"}, [(b"www-authenticate", b"Bearer")]
            )
            return
        path = scope["path"]
        if path == "/v1/info" and scope["method"] in ("GET", "HEAD"):
            await self._json(send, 200, INFO.public())
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *MODEL_HEADERS]
                if path in PREDICT_PATHS and message["status"] == 400:
                    Metrics.get().rejected.labels(reason="invalid_request").inc()
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
                self.metrics.predictions.labels(version, "value").inc()
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


Predictor.add_asgi_middleware(ServiceGate)
