"""The blocking API: `SyncClient` defines the public methods once for `RestClient` and `GrpcClient`.

>>> from clients import GrpcClient
>>> with GrpcClient("localhost:8500") as client:                          # doctest: +SKIP
...     client.wait_until_available("minilm", timeout=60).available
True
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np

from clients._base import BaseClient, Inputs, Retries, StatusPoll
from clients._batching import BatchResult, run_sync
from clients._config import DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, NOT_GIVEN, RetryPolicy
from clients._errors import RetryableError, UnimplementedError
from clients._metadata import ModelMetadata, ModelStatus, SignatureInfo
from protocol import DEFAULT_SIGNATURE

__all__ = ["SyncClient"]


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
        poll = StatusPoll(model, self._timeout(timeout), poll_interval)
        while True:
            call_timeout = poll.call_timeout()
            try:
                answer = self._fetch_status(model, version, label, call_timeout)
            except StatusPoll.NOT_YET as exc:
                answer = exc
            if poll.done(answer):
                return answer
            time.sleep(poll.pause())

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
        retries = Retries(policy)
        while True:
            try:
                sig = self._signature(model, signature_name, version, label, timeout)
                break
            except RetryableError as exc:
                time.sleep(retries.pause_after(exc))
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
