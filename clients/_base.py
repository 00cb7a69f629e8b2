"""What every client shares, whatever its transport and whether it blocks or awaits.

`BaseClient` holds the settings and everything that does not depend on the
transport (input normalisation, signature lookup and cache, argument checks).
`SyncClient` (`clients/_sync.py`) and `AsyncClient` (`clients/_async.py`)
define the public methods once each, so every client has the same method
names, arguments and units (`timeout` is always seconds; `NOT_GIVEN` means
"the client's default", `None` means "no limit"). Their loops only wait
(`time.sleep` or `await asyncio.sleep`); what to do next is decided here, by
the same plan objects for both (`StatusPoll`, `Retries`), as httpx's
`Client`/`AsyncClient` share `BaseClient`.

A transport implements four hooks: `_send_predict`, `_send_examples`,
`_fetch_metadata`, `_fetch_status`, and its codec answers the questions about
its wire format (`row_nbytes`).
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np

from clients._batching import _BatchRun, check_on_error
from clients._config import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_TIMEOUT, NOT_GIVEN, RetryPolicy
from clients._errors import DeadlineExceededError, NotFoundError, RetryableError, ServingError
from clients._metadata import ModelMetadata, ModelStatus, SignatureInfo
from clients._tensors import as_array, cast_to_spec

__all__ = ["BaseClient", "StatusPoll", "Retries"]

Inputs = Any  # Mapping[str, array-like] | array-like (single-input signatures)


class StatusPoll:
    """The plan of `wait_until_available`: how long each status call may take,
    when to give up, how long to pause; the caller only calls and waits.

    >>> poll = StatusPoll("m", timeout=None, poll_interval=0.25)
    >>> poll.call_timeout(), poll.done(NotFoundError("not yet")), poll.pause()
    (5.0, False, 0.25)
    """

    #: a single status call never waits longer, so a hung connection is retried
    MAX_CALL_TIMEOUT = 5.0
    #: errors that mean "not yet" while waiting (the model is still loading, the server starting)
    NOT_YET = (NotFoundError, RetryableError)

    def __init__(self, model: str, timeout: float | None, poll_interval: float):
        self.model, self.timeout, self.poll_interval = model, timeout, poll_interval
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.last: Any = "no answer yet"

    def _remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def call_timeout(self) -> float:
        """The next status call's timeout; `DeadlineExceededError` once the time is up."""
        remaining = self._remaining()
        if remaining is None:
            return self.MAX_CALL_TIMEOUT
        if remaining <= 0:
            raise DeadlineExceededError(f"model {self.model!r} was not AVAILABLE within {self.timeout} s; "
                                        f"last seen: {self.last}")
        return max(0.05, min(self.MAX_CALL_TIMEOUT, remaining))

    def done(self, answer: ModelStatus | ServingError) -> bool:
        """Whether `answer` (a status, or the error a status call raised) ends the wait."""
        self.last = answer
        return isinstance(answer, ModelStatus) and answer.available

    def pause(self) -> float:
        remaining = self._remaining()
        return self.poll_interval if remaining is None else max(0.0, min(self.poll_interval, remaining))

class Retries:
    """The retry plan of one call: after a transient failure, how long to pause
    before the next attempt, or re-raise when the policy says stop.

    >>> retries = Retries(RetryPolicy(max_attempts=2, jitter=0.0))
    >>> retries.pause_after(RetryableError("busy"))
    0.25
    """

    def __init__(self, policy: RetryPolicy):
        self.policy, self.attempt = policy, 1

    def pause_after(self, exc: RetryableError) -> float:
        if not self.policy.should_retry(self.attempt):
            raise exc
        pause = self.policy.backoff(self.attempt)
        self.attempt += 1
        return pause


class BaseClient:
    """Settings and transport-independent helpers shared by all clients.

    Every client takes the server's address first (`address`: a URL for REST,
    a gRPC target such as "localhost:8500" for gRPC), then the same
    keyword-only settings.
    """

    def __init__(self, address: str, *, timeout: float | None = DEFAULT_TIMEOUT,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 retry: RetryPolicy | None = RetryPolicy()):
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout is in seconds and must be > 0 (or None for no limit), got {timeout}")
        if max_request_bytes < 1024:
            raise ValueError(f"max_request_bytes must be at least 1024, got {max_request_bytes}")
        self.address = address
        self.timeout = timeout
        self.max_request_bytes = int(max_request_bytes)
        self.retry = retry if retry is not None else RetryPolicy(max_attempts=1)
        # (model, signature, version, label) -> the signature, or None when the server
        # has no metadata for it (a miss is remembered too: it would be asked again per call)
        self._signatures: dict[tuple, SignatureInfo | None] = {}
        self._codec: Any = None  # set by the transport

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
        """The remembered signature (None: the server has no metadata for it), or False if not asked yet."""
        return self._signatures.get(key, False)

    def _remember(self, key: tuple, meta: ModelMetadata | None) -> SignatureInfo | None:
        sig = self._signatures[key] = meta.signatures.get(key[1]) if meta is not None else None
        return sig

    def _batch_run(self, arrays, batch_size, concurrency, policy, on_error, progress,
                   sort_by_length=True) -> _BatchRun:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        check_on_error(on_error)
        return _BatchRun(arrays, row_nbytes=self._codec.row_nbytes, batch_size=batch_size,
                         max_request_bytes=self.max_request_bytes, retry=policy, progress=progress,
                         sort_by_length=sort_by_length)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.address!r}, timeout={self.timeout!r}, "
                f"max_request_bytes={self.max_request_bytes}, retry={self.retry!r})")
