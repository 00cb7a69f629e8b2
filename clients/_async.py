"""The asyncio API: `AsyncClient` defines the `SyncClient` methods as coroutines for
`AsyncRestClient` (httpx) and `AsyncGrpcClient` (grpc.aio).

Same methods, arguments and results as `RestClient`/`GrpcClient`;
`predict_batched` runs its requests as asyncio tasks. Make the clients inside
the running event loop and close them there (`async with`).

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

import asyncio
from typing import Any, Mapping

import numpy as np

from clients._base import BaseClient, Inputs, Retries, StatusPoll
from clients._batching import BatchResult, run_async
from clients._config import DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, NOT_GIVEN, RetryPolicy
from clients._errors import RetryableError, UnimplementedError
from clients._metadata import ModelMetadata, ModelStatus, SignatureInfo
from protocol import DEFAULT_SIGNATURE

__all__ = ["AsyncClient"]


class AsyncClient(BaseClient):
    """The asyncio API: the same methods as `SyncClient`, as coroutines."""

    async def _send_predict(self, model, arrays, sig, signature_name, version, label, timeout):
        raise NotImplementedError

    async def _send_examples(self, verb, model, examples, context, signature_name, version, label, timeout):
        raise NotImplementedError

    async def _fetch_metadata(self, model, version, label, timeout) -> ModelMetadata:
        raise NotImplementedError

    async def _fetch_status(self, model, version, label, timeout) -> ModelStatus:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def predict(self, model: str, inputs: Inputs, *, signature_name: str = DEFAULT_SIGNATURE,
                      version: int | None = None, label: str | None = None,
                      timeout: float | None = NOT_GIVEN) -> dict[str, np.ndarray]:
        """`SyncClient.predict`, awaitable.

        >>> (await client.predict("minilm", ["hello"]))["embedding"].shape  # doctest: +SKIP
        (1, 384)
        """
        self._check_version(version, label)
        timeout = self._timeout(timeout)
        sig = await self._signature(model, signature_name, version, label, timeout)
        arrays = self._prepare(inputs, sig, signature_name)
        return await self._send_predict(model, arrays, sig, signature_name, version, label, timeout)

    async def classify(self, model: str, examples: list[Mapping[str, Any]], *,
                       context: Mapping[str, Any] | None = None, signature_name: str = DEFAULT_SIGNATURE,
                       version: int | None = None, label: str | None = None,
                       timeout: float | None = NOT_GIVEN) -> dict[str, np.ndarray]:
        """`SyncClient.classify`, awaitable."""
        self._check_version(version, label)
        return await self._send_examples("classify", model, examples, context, signature_name,
                                         version, label, self._timeout(timeout))

    async def regress(self, model: str, examples: list[Mapping[str, Any]], *,
                      context: Mapping[str, Any] | None = None, signature_name: str = DEFAULT_SIGNATURE,
                      version: int | None = None, label: str | None = None,
                      timeout: float | None = NOT_GIVEN) -> dict[str, np.ndarray]:
        """`SyncClient.regress`, awaitable."""
        self._check_version(version, label)
        return await self._send_examples("regress", model, examples, context, signature_name,
                                         version, label, self._timeout(timeout))

    async def metadata(self, model: str, *, version: int | None = None, label: str | None = None,
                       timeout: float | None = NOT_GIVEN) -> ModelMetadata:
        """`SyncClient.metadata`, awaitable."""
        self._check_version(version, label)
        return await self._fetch_metadata(model, version, label, self._timeout(timeout))

    async def status(self, model: str, *, version: int | None = None, label: str | None = None,
                     timeout: float | None = NOT_GIVEN) -> ModelStatus:
        """`SyncClient.status`, awaitable."""
        self._check_version(version, label)
        return await self._fetch_status(model, version, label, self._timeout(timeout))

    async def wait_until_available(self, model: str, timeout: float | None = NOT_GIVEN, *,
                                   version: int | None = None, label: str | None = None,
                                   poll_interval: float = 0.25) -> ModelStatus:
        """`SyncClient.wait_until_available`, awaitable."""
        self._check_version(version, label)
        poll = StatusPoll(model, self._timeout(timeout), poll_interval)
        while True:
            call_timeout = poll.call_timeout()
            try:
                answer = await self._fetch_status(model, version, label, call_timeout)
            except StatusPoll.NOT_YET as exc:
                answer = exc
            if poll.done(answer):
                return answer
            await asyncio.sleep(poll.pause())

    async def predict_batched(self, model: str, inputs: Inputs, *, batch_size: int = DEFAULT_BATCH_SIZE,
                              concurrency: int = DEFAULT_CONCURRENCY, signature_name: str = DEFAULT_SIGNATURE,
                              version: int | None = None, label: str | None = None,
                              timeout: float | None = NOT_GIVEN, retry: RetryPolicy | None = NOT_GIVEN,
                              on_error: str = "raise", progress: bool | None = None,
                              sort_by_length: bool = True) -> BatchResult:
        """`SyncClient.predict_batched`, awaitable (requests are asyncio tasks, not threads).

        >>> result = await client.predict_batched("minilm", texts, concurrency=8)  # doctest: +SKIP
        """
        self._check_version(version, label)
        timeout = self._timeout(timeout)
        policy = self._retry_policy(retry)
        retries = Retries(policy)
        while True:
            try:
                sig = await self._signature(model, signature_name, version, label, timeout)
                break
            except RetryableError as exc:
                await asyncio.sleep(retries.pause_after(exc))
        run = self._batch_run(self._prepare(inputs, sig, signature_name), batch_size, concurrency,
                              policy, on_error, progress, sort_by_length)
        await run_async(run, lambda rows: self._send_predict(model, rows, sig, signature_name, version,
                                                             label, timeout), concurrency)
        return run.result(on_error)

    async def _signature(self, model, signature_name, version, label, timeout) -> SignatureInfo | None:
        key = (model, signature_name, version, label)
        cached = self._cached_signature(key)
        if cached is not False:
            return cached
        try:
            meta = await self._fetch_metadata(model, version, label, timeout)
        except UnimplementedError:  # a server without metadata: send the inputs as given
            meta = None
        return self._remember(key, meta)
