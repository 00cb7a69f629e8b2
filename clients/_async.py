"""asyncio twins of the clients: `AsyncRestClient` (httpx) and `AsyncGrpcClient` (grpc.aio).

Same methods, arguments and results as `RestClient`/`GrpcClient`, as
coroutines; `predict_batched` runs its requests as asyncio tasks. Make them
inside the running event loop and close them there (`async with`).

>>> import asyncio
>>> from clients import AsyncGrpcClient
>>> async def main():                                                  # doctest: +SKIP
...     async with AsyncGrpcClient("localhost:8500") as client:
...         result = await client.predict_batched("minilm", ["a", "b"], concurrency=8)
...         return result["embedding"].shape
>>> asyncio.run(main())                                                # doctest: +SKIP
(2, 384)
"""
from __future__ import annotations

from typing import Any, Sequence

import grpc
import grpc.aio
import httpx

from clients._base import AsyncClient
from clients._config import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_TIMEOUT, RetryPolicy
from clients._errors import DeadlineExceededError, UnavailableError, error_from_grpc
from clients._grpc import GrpcCodec, make_channel_options
from clients._rest import RestCodec
from protocol import GRPC_PORT, REST_PORT

__all__ = ["AsyncRestClient", "AsyncGrpcClient"]

_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class AsyncRestClient(AsyncClient):
    """TF Serving's REST API over a pooled `httpx.AsyncClient`."""

    transport = "rest"

    def __init__(self, url: str = f"http://localhost:{REST_PORT}", *, timeout: float | None = DEFAULT_TIMEOUT,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, retry: RetryPolicy | None = RetryPolicy(),
                 request_format: str = "columnar", pool_size: int = 32):
        super().__init__(timeout=timeout, max_request_bytes=max_request_bytes, retry=retry)
        self._codec = RestCodec(url, self.max_request_bytes, request_format)
        self._address = self.url = self._codec.url
        self._http = httpx.AsyncClient(
            headers=_JSON_HEADERS, timeout=None, trust_env=False,
            limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size))

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, url: str, body: bytes | None, timeout) -> tuple[int, bytes]:
        try:
            response = await self._http.request(method, url, content=body, timeout=timeout)
            return response.status_code, response.content
        except httpx.TimeoutException as exc:
            raise DeadlineExceededError(f"no answer from {url} within timeout={timeout} s; raise the "
                                        f"timeout or send fewer rows per request") from exc
        except httpx.TransportError as exc:
            raise UnavailableError(f"cannot reach {url}: {exc!r}") from exc

    async def _send_predict(self, model, arrays, sig, signature_name, version, label, timeout):
        url, body = self._codec.predict_request(model, arrays, sig, signature_name, version, label)
        return self._codec.predict_response(*(await self._call("POST", url, body, timeout)), sig)

    async def _send_examples(self, verb, model, examples, context, signature_name, version, label, timeout):
        url, body = self._codec.examples_request(verb, model, examples, context, signature_name, version, label)
        return self._codec.examples_response(verb, *(await self._call("POST", url, body, timeout)))

    async def _fetch_metadata(self, model, version, label, timeout):
        url = self._codec.metadata_url(model, version, label)
        return self._codec.metadata_response(model, *(await self._call("GET", url, None, timeout)))

    async def _fetch_status(self, model, version, label, timeout):
        url = self._codec.status_url(model, version, label)
        return self._codec.status_response(model, *(await self._call("GET", url, None, timeout)))


class AsyncGrpcClient(AsyncClient):
    """TF Serving's gRPC API over a `grpc.aio` channel."""

    transport = "grpc"

    def __init__(self, target: str = f"localhost:{GRPC_PORT}", *, timeout: float | None = DEFAULT_TIMEOUT,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, retry: RetryPolicy | None = RetryPolicy(),
                 credentials: grpc.ChannelCredentials | None = None,
                 channel_options: Sequence[tuple[str, Any]] = ()):
        super().__init__(timeout=timeout, max_request_bytes=max_request_bytes, retry=retry)
        self._codec = GrpcCodec(self.max_request_bytes)
        self._address = self.target = target
        options = make_channel_options(self.max_request_bytes, channel_options)
        self._channel = (grpc.aio.secure_channel(target, credentials, options=options) if credentials
                         else grpc.aio.insecure_channel(target, options=options))
        a = self._codec.apis
        self._predictions = a.prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = a.model_service_pb2_grpc.ModelServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    @staticmethod
    async def _call(method, request, timeout):
        try:
            return await method(request, timeout=timeout)
        except grpc.RpcError as exc:  # grpc.aio.AioRpcError is one
            raise error_from_grpc(exc) from exc

    async def _send_predict(self, model, arrays, sig, signature_name, version, label, timeout):
        request = self._codec.predict_request(model, arrays, signature_name, version, label)
        return self._codec.predict_response(await self._call(self._predictions.Predict, request, timeout))

    async def _send_examples(self, verb, model, examples, context, signature_name, version, label, timeout):
        request = self._codec.examples_request(verb, model, examples, context, signature_name, version, label)
        method = self._predictions.Classify if verb == "classify" else self._predictions.Regress
        return self._codec.examples_response(verb, await self._call(method, request, timeout))

    async def _fetch_metadata(self, model, version, label, timeout):
        request = self._codec.metadata_request(model, version, label)
        return self._codec.metadata_response(
            model, await self._call(self._predictions.GetModelMetadata, request, timeout))

    async def _fetch_status(self, model, version, label, timeout):
        request = self._codec.status_request(model, version, label)
        return self._codec.status_response(model, await self._call(self._models.GetModelStatus, request, timeout))
