"""The gateway: OpenAI's embeddings API in front of a TF Serving model server.

    POST /v1/embeddings       -> the model's `text` signature (and `token_count` for usage), over gRPC
    GET  /v1/models           every routed model the server has with a `text` -> `embedding` signature
    GET  /v1/models/{id}      one of them
    GET  /health              200 when every routed model is AVAILABLE on the server, else 503

>>> config = GatewayConfig(routes={"minilm": "minilm"}, upstream="localhost:8500", port=8000)
>>> asyncio.run(Gateway(config).serve())          # until SIGTERM / SIGINT   # doctest: +SKIP
"""
from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import signal
import time

import numpy as np
import orjson

from clients import AsyncGrpcClient, BatchPredictionError, RetryableError, RetryPolicy, ServingError
from gateway._embeddings import EmbeddingRequest, check_dimensions, embedding_response, truncate
from gateway._errors import OpenAIError, from_upstream
from gateway._http import HttpServer, Request, Response
from gateway._models import EMBEDDING_OUTPUT, TEXT_SIGNATURE, TOKEN_COUNT_SIGNATURE, ModelCatalog, ModelInfo

__all__ = ["Gateway", "GatewayConfig"]

log = logging.getLogger("gateway")

_MODELS_PREFIX = "/v1/models/"


@dataclasses.dataclass(frozen=True)
class GatewayConfig:
    """Settings of a `Gateway` (the CLI's flags)."""

    routes: dict[str, str]                  # model id clients send -> model name on the server
    upstream: str = "localhost:8500"        # the model server's gRPC address
    host: str = "127.0.0.1"
    port: int = 8000
    batch_size: int = 64                    # texts per upstream request
    concurrency: int = 4                    # upstream requests in flight per embeddings request
    timeout: float = 60.0                   # seconds per upstream call
    retries: int = 1                        # extra attempts after a transient upstream failure
    api_key: str | None = None              # required as `Authorization: Bearer ...` when set
    max_body_bytes: int = 64 * 1024 * 1024
    access_log: bool = True
    owned_by: str = "tfserving-transformers"


class Gateway:
    """Binds the HTTP server and the gRPC client; `start`/`stop`, or `serve` until a signal."""

    def __init__(self, config: GatewayConfig):
        if not config.routes:
            raise ValueError("no models to serve: give at least one route (--model NAME)")
        self.config = config
        self.port: int | None = None
        self._client: AsyncGrpcClient | None = None
        self._catalog: ModelCatalog | None = None
        self._http = HttpServer(self.handle, max_body_bytes=config.max_body_bytes,
                                error_body=lambda status, message: orjson.dumps(OpenAIError(status, message).body()),
                                access_log=config.access_log)
        self._created = int(time.time())
        self._warned_no_counts: set[str] = set()
        self._retry = RetryPolicy(max_attempts=1 + config.retries, initial_backoff=0.1, max_backoff=1.0)

    async def start(self) -> int:
        """Connect (lazily: the server may come up later) and listen; returns the port."""
        self._client = AsyncGrpcClient(self.config.upstream, timeout=self.config.timeout, retry=self._retry)
        self._catalog = ModelCatalog(self._client, self.config.routes, timeout=min(10.0, self.config.timeout))
        self.port = await self._http.start(self.config.host, self.config.port)
        return self.port

    async def stop(self, grace: float = 30.0) -> None:
        await self._http.stop(grace)
        if self._client is not None:
            await self._client.close()

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT, then finish the requests in flight."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        routes = ", ".join(k if k == v else f"{k} -> {v}" for k, v in self.config.routes.items())
        log.info("OpenAI embeddings API on http://%s:%d/v1 (models: %s), model server %s (gRPC)",
                 self.config.host, self.port, routes, self.config.upstream)
        check = asyncio.ensure_future(self._check_upstream())
        await stop.wait()
        check.cancel()
        log.info("stopping: finishing requests in flight")
        await self.stop()

    async def _check_upstream(self) -> None:
        """Says at start-up what the server has; never fatal (it may come up later)."""
        for upstream, info in (await self._catalog.all_info()).items():
            if isinstance(info, ModelInfo):
                if not info.embedding:
                    log.warning("model %s: its `text` signature has no `embedding` output (outputs: %s); "
                                "requests for it are refused", upstream, ", ".join(info.outputs) or "none")
                else:
                    log.info("model %s: version %s, %s dimensions", upstream, info.version, info.dimensions)
            else:
                log.warning("model %s: not reachable yet on %s: %s", upstream, self.config.upstream, info)

    # -- HTTP --------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Any request -> a response; errors in OpenAI's format, never a traceback."""
        try:
            if request.path == "/health":
                return await self._health(request)
            self._authorize(request)
            if request.path == "/v1/embeddings":
                self._allow(request, "POST")
                return await self._embeddings(request)
            if request.path == "/v1/models":
                self._allow(request, "GET")
                return await self._list_models()
            if request.path.startswith(_MODELS_PREFIX):
                self._allow(request, "GET")
                return await self._get_model(request.path[len(_MODELS_PREFIX):])
            raise OpenAIError(404, f"Invalid URL ({request.method} {request.path}): the gateway serves "
                                   "POST /v1/embeddings, GET /v1/models and GET /v1/models/{model}",
                              code="unknown_url")
        except OpenAIError as exc:
            if exc.status >= 500:
                log.warning("%s %s: %d %s", request.method, request.path, exc.status, exc.message)
            return Response.json(exc.status, exc.body())
        except Exception as exc:  # a bug of ours: answer 500 in OpenAI's format, log the traceback here
            log.exception("%s %s failed", request.method, request.path)
            error = OpenAIError(500, f"internal error in the gateway: {type(exc).__name__}: {exc}",
                                type="server_error")
            return Response.json(500, error.body())

    def _authorize(self, request: Request) -> None:
        key = self.config.api_key
        if key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
            raise OpenAIError(401, "Incorrect API key provided: send it as `Authorization: Bearer KEY` "
                                   "(the gateway's --api-key)", code="invalid_api_key")

    @staticmethod
    def _allow(request: Request, method: str) -> None:
        if request.method != method:
            raise OpenAIError(405, f"{request.method} is not allowed on {request.path}; use {method}",
                              code="method_not_allowed")

    # -- endpoints ---------------------------------------------------------------------------

    async def _embeddings(self, request: Request) -> Response:
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            raise OpenAIError.invalid(f"We could not parse the JSON body of your request: {exc}") from None
        req = EmbeddingRequest.parse(body)
        upstream, info = await self._model(req.model)
        if info.dimensions is not None:
            check_dimensions(req.dimensions, info.dimensions, req.model)
        texts = np.array(req.texts, dtype=object)
        calls = [self._predict(req.model, upstream, texts, TEXT_SIGNATURE, EMBEDDING_OUTPUT)]
        if info.counts_tokens:
            calls.append(self._predict(req.model, upstream, texts, TOKEN_COUNT_SIGNATURE, "token_count"))
        elif upstream not in self._warned_no_counts:
            self._warned_no_counts.add(upstream)
            log.warning("model %s has no `%s` signature (exported before it existed?): usage reports 0 "
                        "tokens; re-export it to count them", upstream, TOKEN_COUNT_SIGNATURE)
        results = await _all_or_nothing(calls)
        vectors = truncate(results[0], req.dimensions, req.model)
        tokens = int(results[1].sum()) if len(results) > 1 else 0
        payload = embedding_response(req.model, vectors, req.encoding_format, tokens)
        return Response.json(200, payload, option=orjson.OPT_SERIALIZE_NUMPY)

    async def _model(self, model_id: str) -> tuple[str, ModelInfo]:
        upstream = self._catalog.upstream(model_id)
        if upstream is None:
            raise OpenAIError.model_not_found(model_id, f"This gateway serves: {', '.join(self.config.routes)}.")
        try:
            info = await self._catalog.info(upstream)
        except ServingError as exc:
            raise from_upstream(exc, model_id, self.config.upstream) from None
        if not info.embedding:
            raise OpenAIError.invalid(f"model `{model_id}` is not an embedding model: its `{TEXT_SIGNATURE}` "
                                      f"signature returns {list(info.outputs)}, no `{EMBEDDING_OUTPUT}` "
                                      "(serve a feature-extraction export)", param="model",
                                      code="model_not_supported")
        return upstream, info

    async def _predict(self, model_id: str, upstream: str, texts: np.ndarray, signature: str,
                       output: str) -> np.ndarray:
        """One request when the texts fit one batch, else `predict_batched` (same order, concurrent)."""
        try:
            if len(texts) <= self.config.batch_size:
                result = await self._client.predict(upstream, {"text": texts}, signature_name=signature)
            else:
                result = await self._client.predict_batched(
                    upstream, {"text": texts}, signature_name=signature, batch_size=self.config.batch_size,
                    concurrency=self.config.concurrency, retry=self._retry, progress=False)
            return result[output]
        except BatchPredictionError as exc:
            errors = exc.result.errors
            raise self._upstream_error(errors[min(errors)], model_id, upstream) from None
        except ServingError as exc:
            raise self._upstream_error(exc, model_id, upstream) from None
        except KeyError:
            self._catalog.forget(upstream)
            raise OpenAIError(502, f"signature `{signature}` of model `{upstream}` returned no `{output}`",
                              type="server_error", code="upstream_error") from None

    def _upstream_error(self, exc: ServingError, model_id: str, upstream: str) -> OpenAIError:
        self._catalog.forget(upstream)  # a new version may have other signatures; look again next time
        return from_upstream(exc, model_id, self.config.upstream)

    async def _list_models(self) -> Response:
        found = await self._catalog.all_info()
        errors = [e for e in found.values() if isinstance(e, Exception)]
        if errors and len(errors) == len(found) and all(isinstance(e, RetryableError) for e in errors):
            raise from_upstream(errors[0], "*", self.config.upstream)
        data = [self._model_object(model_id) for model_id, upstream in self.config.routes.items()
                if isinstance(found[upstream], ModelInfo) and found[upstream].embedding]
        return Response.json(200, {"object": "list", "data": data})

    async def _get_model(self, model_id: str) -> Response:
        await self._model(model_id)
        return Response.json(200, self._model_object(model_id))

    def _model_object(self, model_id: str) -> dict:
        # TF Serving knows no creation time; the gateway's start is the closest honest figure.
        return {"id": model_id, "object": "model", "created": self._created, "owned_by": self.config.owned_by}

    async def _health(self, request: Request) -> Response:
        """200 when every routed model has an AVAILABLE version on the server; what is wrong otherwise."""
        names = sorted(set(self.config.routes.values()))

        async def state(name: str) -> str:
            try:
                status = await self._client.status(name, timeout=5.0)
            except ServingError as exc:
                return f"{type(exc).__name__}: {exc.message}"
            return "AVAILABLE" if status.available else ", ".join(f"{v.version}: {v.state}" for v in status.versions)

        states = dict(zip(names, await asyncio.gather(*(state(n) for n in names))))
        ok = all(s == "AVAILABLE" for s in states.values())
        return Response.json(200 if ok else 503, {"status": "ok" if ok else "unavailable",
                                                  "upstream": self.config.upstream, "models": states})


async def _all_or_nothing(calls) -> list:
    """Run the coroutines together; the first failure cancels the rest and is raised."""
    tasks = [asyncio.ensure_future(c) for c in calls]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
