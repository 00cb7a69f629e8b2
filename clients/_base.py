"""The one client API; `RestClient`, `GrpcClient` and their async twins only move bytes.

`BaseClient` holds the settings and everything that does not depend on the
transport (input normalisation, signature lookup and cache, argument checks).
`SyncClient` and `AsyncClient` define the public methods once, so every
client has the same method names, arguments and units (`timeout` is always
seconds; `NOT_GIVEN` means "the client's default", `None` means "no limit").
A transport implements four hooks: `_send_predict`, `_send_examples`,
`_fetch_metadata`, `_fetch_status`.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Mapping

import numpy as np

from clients._batching import BatchResult, _BatchRun, check_on_error, run_async, run_sync
from clients._config import (DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, DEFAULT_MAX_REQUEST_BYTES,
                             DEFAULT_TIMEOUT, NOT_GIVEN, RetryPolicy)
from clients._errors import DeadlineExceededError, NotFoundError, RetryableError, UnimplementedError
from clients._metadata import ModelMetadata, ModelStatus, SignatureInfo
from clients._tensors import as_array, cast_to_spec
from protocol import DEFAULT_SIGNATURE

__all__ = ["BaseClient", "SyncClient", "AsyncClient"]

Inputs = Any  # Mapping[str, array-like] | array-like (single-input signatures)


class BaseClient:
    """Settings and transport-independent helpers shared by all clients."""

    transport = "?"

    def __init__(self, *, timeout: float | None = DEFAULT_TIMEOUT,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 retry: RetryPolicy | None = RetryPolicy()):
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout is in seconds and must be > 0 (or None for no limit), got {timeout}")
        if max_request_bytes < 1024:
            raise ValueError(f"max_request_bytes must be at least 1024, got {max_request_bytes}")
        self.timeout = timeout
        self.max_request_bytes = int(max_request_bytes)
        self.retry = retry if retry is not None else RetryPolicy(max_attempts=1)
        self._signatures: dict[tuple, SignatureInfo] = {}

    # ------------------------------------------------------------------ helpers
    def _timeout(self, timeout) -> float | None:
        if timeout is NOT_GIVEN:
            return self.timeout
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout is in seconds and must be > 0 (or None for no limit), got {timeout}")
        return timeout

    def _retry_policy(self, retry) -> RetryPolicy:
        if retry is NOT_GIVEN:
            return self.retry
        return retry if retry is not None else RetryPolicy(max_attempts=1)

    @staticmethod
    def _check_version(version: int | None, label: str | None) -> None:
        if version is not None and label is not None:
            raise ValueError(f"give a version or a label, not both (got version={version!r}, label={label!r})")

    @staticmethod
    def _prepare(inputs: Inputs, sig: SignatureInfo | None, signature_name: str) -> dict[str, np.ndarray]:
        """Inputs -> {name: numpy array} cast to the signature's dtypes."""
        if isinstance(inputs, Mapping):
            if not inputs:
                raise ValueError("inputs is an empty dict; pass {input_name: values}")
            arrays = {str(k): as_array(v) for k, v in inputs.items()}
        else:
            if sig is None:
                raise TypeError(f"cannot tell the input name of signature {signature_name!r}: the model's "
                                f"metadata does not list it (or the server gave none); check signature_name "
                                f"or pass inputs as a dict {{input_name: values}}")
            if len(sig.inputs) != 1:
                raise TypeError(f"signature {signature_name!r} has inputs {sorted(sig.inputs)}; pass a "
                                f"dict {{input_name: values}} instead of a single array")
            arrays = {next(iter(sig.inputs)): as_array(inputs)}
        if sig is not None:
            arrays = {k: cast_to_spec(k, v, sig.inputs.get(k)) for k, v in arrays.items()}
        return arrays

    def _cached_signature(self, key: tuple) -> SignatureInfo | None | bool:
        return self._signatures.get(key, False)

    def _remember(self, key: tuple, meta: ModelMetadata | None) -> SignatureInfo | None:
        sig = meta.signatures.get(key[1]) if meta is not None else None
        if sig is not None:
            self._signatures[key] = sig
        return sig

    def _batch_run(self, arrays, batch_size, concurrency, policy, on_error, progress,
                   sort_by_length=True) -> _BatchRun:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        check_on_error(on_error)
        return _BatchRun(arrays, transport=self.transport, batch_size=batch_size,
                         max_request_bytes=self.max_request_bytes, retry=policy, progress=progress,
                         sort_by_length=sort_by_length)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self._address!r}, timeout={self.timeout!r}, "
                f"max_request_bytes={self.max_request_bytes}, retry={self.retry!r})")

    _address = ""


class SyncClient(BaseClient):
    """The blocking API. Subclasses: `RestClient`, `GrpcClient`."""

    # ------------------------------------------------------------------ transport hooks
    def _send_predict(self, model, arrays, sig, signature_name, version, label, timeout) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _send_examples(self, verb, model, examples, context, signature_name, version, label,
                       timeout) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _fetch_metadata(self, model, version, label, timeout) -> ModelMetadata:
        raise NotImplementedError

    def _fetch_status(self, model, version, label, timeout) -> ModelStatus:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------ public API
    def predict(self, model: str, inputs: Inputs, *, signature_name: str = DEFAULT_SIGNATURE,
                version: int | None = None, label: str | None = None,
                timeout: float | None = NOT_GIVEN) -> dict[str, np.ndarray]:
        """One Predict request; returns {output name: numpy array}.

        `inputs` is {input name: array-like} or, for a single-input signature, the
        array itself. Text is sent as text, `bytes` as binary.

        >>> client.predict("minilm", ["a sentence", "another"])["embedding"].shape  # doctest: +SKIP
        (2, 384)
        """
        self._check_version(version, label)
        timeout = self._timeout(timeout)
        sig = self._signature(model, signature_name, version, label, timeout)
        arrays = self._prepare(inputs, sig, signature_name)
        return self._send_predict(model, arrays, sig, signature_name, version, label, timeout)

    def classify(self, model: str, examples: list[Mapping[str, Any]], *, context: Mapping[str, Any] | None = None,
                 signature_name: str = DEFAULT_SIGNATURE, version: int | None = None,
                 label: str | None = None, timeout: float | None = NOT_GIVEN) -> dict[str, np.ndarray]:
        """Classify `tf.Example`s given as dicts; returns {"classes": bytes [n, k], "scores": float32 [n, k]}.

        >>> client.classify("census", [{"age": 35, "education": "Masters"}])  # doctest: +SKIP
        """
        self._check_version(version, label)
        return self._send_examples("classify", model, examples, context, signature_name, version,
                                   label, self._timeout(timeout))

    def regress(self, model: str, examples: list[Mapping[str, Any]], *, context: Mapping[str, Any] | None = None,
                signature_name: str = DEFAULT_SIGNATURE, version: int | None = None,
                label: str | None = None, timeout: float | None = NOT_GIVEN) -> dict[str, np.ndarray]:
        """Regress `tf.Example`s given as dicts; returns {"outputs": float32 [n]}.

        >>> client.regress("housing", [{"rooms": 3.0}])["outputs"]  # doctest: +SKIP
        """
        self._check_version(version, label)
        return self._send_examples("regress", model, examples, context, signature_name, version,
                                   label, self._timeout(timeout))

    def metadata(self, model: str, *, version: int | None = None, label: str | None = None,
                 timeout: float | None = NOT_GIVEN) -> ModelMetadata:
        """The model's signatures with input/output names, dtypes and shapes.

        >>> client.metadata("minilm").signatures["text"].inputs  # doctest: +SKIP
        {'text': TensorSpec(dtype='string', shape=(None,))}
        """
        self._check_version(version, label)
        return self._fetch_metadata(model, version, label, self._timeout(timeout))

    def status(self, model: str, *, version: int | None = None, label: str | None = None,
               timeout: float | None = NOT_GIVEN) -> ModelStatus:
        """The state of the model's versions (all, or the one asked for).

        >>> client.status("minilm").available  # doctest: +SKIP
        True
        """
        self._check_version(version, label)
        return self._fetch_status(model, version, label, self._timeout(timeout))

    def wait_until_available(self, model: str, timeout: float | None = NOT_GIVEN, *,
                             version: int | None = None, label: str | None = None,
                             poll_interval: float = 0.25) -> ModelStatus:
        """Poll `status` until a version is AVAILABLE; `DeadlineExceededError` after `timeout` s.

        >>> client.wait_until_available("minilm", timeout=60).available  # doctest: +SKIP
        True
        """
        self._check_version(version, label)
        timeout = self._timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        last: Any = "no answer yet"
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise DeadlineExceededError(f"model {model!r} was not AVAILABLE within {timeout} s; "
                                            f"last seen: {last}")
            try:
                status = self._fetch_status(model, version, label,
                                            5.0 if remaining is None else max(0.05, min(5.0, remaining)))
                if status.available:
                    return status
                last = status
            except (NotFoundError, RetryableError) as exc:
                last = exc
            time.sleep(poll_interval if remaining is None else max(0.0, min(poll_interval, remaining)))

    def predict_batched(self, model: str, inputs: Inputs, *, batch_size: int = DEFAULT_BATCH_SIZE,
                        concurrency: int = DEFAULT_CONCURRENCY, signature_name: str = DEFAULT_SIGNATURE,
                        version: int | None = None, label: str | None = None,
                        timeout: float | None = NOT_GIVEN, retry: RetryPolicy | None = NOT_GIVEN,
                        on_error: str = "raise", progress: bool | None = None,
                        sort_by_length: bool = True) -> BatchResult:
        """Predict any number of rows: split, concurrent, retried, in input order.

        Rows are cut into requests of at most `batch_size` rows that fit under
        `max_request_bytes`; `concurrency` requests are in flight at once;
        transient failures are retried by `retry` (client's policy if not given,
        `None` = never); invalid rows are isolated by bisection. When rows fail
        for good, `on_error="raise"` raises `BatchPredictionError` (its `.result`
        holds the rows that succeeded), `on_error="return"` returns the
        `BatchResult` with `.errors`. `progress=None` shows a tqdm bar on long
        runs in a terminal. `sort_by_length` groups rows of similar size into
        the same request (less padding on the server); results and error
        indices are always in input order.

        >>> result = client.predict_batched("minilm", texts, batch_size=64, concurrency=4)  # doctest: +SKIP
        >>> result["embedding"].shape  # doctest: +SKIP
        (100000, 384)
        """
        self._check_version(version, label)
        timeout = self._timeout(timeout)
        policy = self._retry_policy(retry)
        sig = self._retrying(policy, lambda: self._signature(model, signature_name, version, label, timeout))
        run = self._batch_run(self._prepare(inputs, sig, signature_name), batch_size, concurrency,
                              policy, on_error, progress, sort_by_length)
        run_sync(run, lambda rows: self._send_predict(model, rows, sig, signature_name, version,
                                                      label, timeout), concurrency)
        return run.result(on_error)

    # ------------------------------------------------------------------ internals
    def _signature(self, model, signature_name, version, label, timeout) -> SignatureInfo | None:
        key = (model, signature_name, version, label)
        cached = self._cached_signature(key)
        if cached is not False:
            return cached
        try:
            meta = self._fetch_metadata(model, version, label, timeout)
        except UnimplementedError:  # a server without metadata: send the inputs as given
            meta = None
        return self._remember(key, meta)

    @staticmethod
    def _retrying(policy: RetryPolicy, fn):
        attempt = 1
        while True:
            try:
                return fn()
            except RetryableError:
                if not policy.should_retry(attempt):
                    raise
                time.sleep(policy.backoff(attempt))
                attempt += 1


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
        timeout = self._timeout(timeout)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        last: Any = "no answer yet"
        while True:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise DeadlineExceededError(f"model {model!r} was not AVAILABLE within {timeout} s; "
                                            f"last seen: {last}")
            try:
                status = await self._fetch_status(model, version, label,
                                                  5.0 if remaining is None else max(0.05, min(5.0, remaining)))
                if status.available:
                    return status
                last = status
            except (NotFoundError, RetryableError) as exc:
                last = exc
            await asyncio.sleep(poll_interval if remaining is None else max(0.0, min(poll_interval, remaining)))

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
        attempt = 1
        while True:
            try:
                sig = await self._signature(model, signature_name, version, label, timeout)
                break
            except RetryableError:
                if not policy.should_retry(attempt):
                    raise
                await asyncio.sleep(policy.backoff(attempt))
                attempt += 1
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
        except UnimplementedError:
            meta = None
        return self._remember(key, meta)
