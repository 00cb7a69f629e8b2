"""One exception tree for both transports.

    ServingError                      anything the serving stack answered or could not answer
    ├── InvalidArgumentError          400: INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE
    │   └── RequestTooLargeError      a request or answer over a size limit: max_request_bytes, HTTP 413,
    │                                 gRPC's "Received message larger than max" (split, never retried)
    ├── UnauthenticatedError          401: UNAUTHENTICATED
    ├── PermissionDeniedError         403: PERMISSION_DENIED
    ├── NotFoundError                 404: NOT_FOUND (model, version, label or signature)
    ├── InternalError                 500: INTERNAL, UNKNOWN, DATA_LOSS (and unknown HTTP statuses)
    ├── UnimplementedError            501: UNIMPLEMENTED
    ├── RetryableError                transient: `predict_batched` retries these
    │   ├── AbortedError              409: ABORTED, ALREADY_EXISTS
    │   ├── ResourceExhaustedError    429: RESOURCE_EXHAUSTED
    │   ├── RequestCancelledError     499: CANCELLED (by the server or a proxy: this client never cancels)
    │   ├── UnavailableError          503: UNAVAILABLE, connection refused or reset, and gRPC
    │   │                             UNKNOWN/INTERNAL that only say the stream or socket broke
    │   └── DeadlineExceededError     504: DEADLINE_EXCEEDED, the client's own timeout
    ├── ResponseFormatError           the server answered something that is not TF Serving's format
    └── BatchPredictionError          some rows of `predict_batched` failed for good

The class is chosen from the HTTP status TF Serving's REST API gives a gRPC
code (`protocol.HTTP_STATUS`), so a REST error and the gRPC error for the same
request are the same class. `code` keeps the precise gRPC code name where the
transport tells it (the REST API only tells the HTTP status).

>>> from clients import errors_for_status, NotFoundError
>>> err = errors_for_status(404, "Servable not found for request: Latest(nope)")
>>> isinstance(err, NotFoundError), err.http_status, err.code
(True, 404, 'NOT_FOUND')
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from protocol import http_status

if TYPE_CHECKING:  # pragma: no cover
    from clients._batching import BatchResult

__all__ = [
    "ServingError",
    "InvalidArgumentError",
    "RequestTooLargeError",
    "UnauthenticatedError",
    "PermissionDeniedError",
    "NotFoundError",
    "AbortedError",
    "RequestCancelledError",
    "InternalError",
    "UnimplementedError",
    "RetryableError",
    "ResourceExhaustedError",
    "UnavailableError",
    "DeadlineExceededError",
    "ResponseFormatError",
    "BatchPredictionError",
    "errors_for_status",
    "error_from_grpc",
]


class ServingError(Exception):
    """An error from (or on the way to) a TF Serving compatible server.

    `message` is the server's own message when it sent one; `code` the gRPC
    status code name (e.g. "NOT_FOUND"); `http_status` the HTTP status the REST
    API uses for it.
    """

    #: canonical gRPC code name of the class; instances may carry a more precise one
    default_code = "UNKNOWN"
    default_http_status = 500

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.http_status = http_status if http_status is not None else self.default_http_status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, http_status={self.http_status})"

    def __reduce__(self):  # picklable with its keyword arguments
        return (_rebuild, (type(self), self.message, self.code, self.http_status))


def _rebuild(cls, message, code, http_status):
    return cls(message, code=code, http_status=http_status)


class InvalidArgumentError(ServingError):
    """The request is wrong: fix the inputs (never retried)."""
    default_code, default_http_status = "INVALID_ARGUMENT", 400


class RequestTooLargeError(InvalidArgumentError):
    """A request (or its answer) over a size limit: the client's `max_request_bytes`, HTTP 413,
    or a gRPC receive limit ("Received message larger than max"). `predict_batched` splits
    such requests and reports a row that is too large alone."""


class UnauthenticatedError(ServingError):
    default_code, default_http_status = "UNAUTHENTICATED", 401


class PermissionDeniedError(ServingError):
    default_code, default_http_status = "PERMISSION_DENIED", 403


class NotFoundError(ServingError):
    """No such model, version, label or signature."""
    default_code, default_http_status = "NOT_FOUND", 404


class InternalError(ServingError):
    default_code, default_http_status = "INTERNAL", 500


class UnimplementedError(ServingError):
    """The server does not offer this method (e.g. classify on a predict-only model)."""
    default_code, default_http_status = "UNIMPLEMENTED", 501


class RetryableError(ServingError):
    """A transient failure: the same request may succeed later."""


class AbortedError(RetryableError):
    default_code, default_http_status = "ABORTED", 409


class RequestCancelledError(RetryableError):
    """The server (or a proxy) cancelled the call, e.g. while shutting down."""
    default_code, default_http_status = "CANCELLED", 499


class ResourceExhaustedError(RetryableError):
    default_code, default_http_status = "RESOURCE_EXHAUSTED", 429


class UnavailableError(RetryableError):
    """The server is down, restarting, or the connection was refused or reset."""
    default_code, default_http_status = "UNAVAILABLE", 503


class DeadlineExceededError(RetryableError):
    """The call took longer than its `timeout` (client side) or the server's deadline."""
    default_code, default_http_status = "DEADLINE_EXCEEDED", 504


class ResponseFormatError(ServingError):
    """The server answered, but not in TF Serving's format."""
    default_code, default_http_status = "INTERNAL", 500


class BatchPredictionError(ServingError):
    """Some rows of a `predict_batched` run failed after all retries.

    Carries everything: `result` (a `BatchResult` with the outputs of the rows
    that succeeded, in input order) and `errors` (row index -> `ServingError`).
    """
    default_code, default_http_status = "UNKNOWN", 500

    def __init__(self, result: "BatchResult"):
        errors = result.errors
        first = min(errors)
        kinds = sorted({type(e).__name__ for e in errors.values()})
        message = (f"{len(errors)} of {result.num_rows} rows failed ({', '.join(kinds)}); "
                   f"first failed row {first}: {errors[first]}. The rows that succeeded are in "
                   f".result; pass on_error='return' to get a BatchResult instead of this exception")
        super().__init__(message, code=errors[first].code, http_status=errors[first].http_status)
        self.result = result
        self.errors = errors

    def __reduce__(self):
        return (type(self), (self.result,))


_BY_HTTP_STATUS: dict[int, type[ServingError]] = {
    400: InvalidArgumentError,
    401: UnauthenticatedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: AbortedError,
    413: RequestTooLargeError,  # payload too large (HTTP front ends)
    429: ResourceExhaustedError,
    499: RequestCancelledError,
    500: InternalError,
    501: UnimplementedError,
    502: UnavailableError,      # a proxy in front of a restarting server
    503: UnavailableError,
    504: DeadlineExceededError,
}

def errors_for_status(status: int, message: str, *, code: str | None = None) -> ServingError:
    """The exception for an HTTP status (and, when known, a gRPC code name)."""
    cls = _BY_HTTP_STATUS.get(status)
    if cls is None:
        cls = InvalidArgumentError if 400 <= status < 500 else InternalError
    return cls(message, code=code or cls.default_code, http_status=status)


#: what grpc-core says when a stream dies with its connection rather than with a server status
_BROKEN_TRANSPORT = ("stream removed", "rst_stream", "socket closed", "connection reset", "broken pipe",
                     "goaway", "transport closed", "stream refused", "endpoint closing")


def error_from_grpc(exc: Any) -> ServingError:
    """Convert a `grpc.RpcError` (sync or aio) into the matching `ServingError`."""
    try:
        code = exc.code()
        details = exc.details()
    except Exception:  # an RpcError that is not a Call: treat as transport failure
        return UnavailableError(f"gRPC call failed: {exc}")
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    message = details or code.name
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in message:
        # gRPC's own size check ("Received message larger than max (N vs. M)"): not transient
        return RequestTooLargeError(message, code=code.name, http_status=http_status(code))
    if code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL) and any(
            marker in message.lower() for marker in _BROKEN_TRANSPORT):
        # the connection broke under the call (server restarting): not the model's fault
        return UnavailableError(message, code=code.name, http_status=http_status(code))
    return errors_for_status(http_status(code), message, code=code.name)
