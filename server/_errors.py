"""Domain errors of the server, each carrying the gRPC status code TF Serving uses.

The core raises these; `http_status` (here) is the one place an error
becomes an HTTP status, and the gRPC front end aborts with `.code` (in
`_grpc.py`). The HTTP layer's own refusals (a body over the size bound, a
request without a length) are errors here too, each naming its HTTP status
once, so no module writes a status inline.

>>> e = NotFound("Servable not found for request: Latest(minilm)")
>>> e.code.name, str(e), http_status(e)
('NOT_FOUND', 'Servable not found for request: Latest(minilm)', 404)
>>> http_status(PayloadTooLarge("body over 256 MiB"))
413
"""
from __future__ import annotations

import grpc

import protocol

__all__ = [
    "ServingError", "InvalidArgument", "NotFound", "FailedPrecondition",
    "Unavailable", "DeadlineExceeded", "Unimplemented", "Internal",
    "ResourceExhausted", "Cancelled", "AlreadyExists", "from_tf_error",
    "PayloadTooLarge", "LengthRequired", "RequestTimeout", "UriTooLong",
    "HeaderFieldsTooLarge", "UnsupportedMediaType", "ExpectationFailed",
    "VersionNotSupported", "http_status", "INTERNAL_MESSAGE",
]

# What a client is told about an unexpected failure: the details (class,
# message, traceback) go to the log only, as a C++ server would never put
# them on the wire either.
INTERNAL_MESSAGE = "Internal server error"


class ServingError(Exception):
    """An error with the gRPC status code TF Serving would answer with."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InvalidArgument(ServingError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServingError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(ServingError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ServingError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ServingError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(ServingError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(ServingError):
    code = grpc.StatusCode.INTERNAL


class ResourceExhausted(ServingError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Cancelled(ServingError):
    code = grpc.StatusCode.CANCELLED


class AlreadyExists(ServingError):
    code = grpc.StatusCode.ALREADY_EXISTS


# -- refusals of the HTTP layer: each keeps the closest gRPC code and names
# the HTTP status HTTP/1.1 (RFC 9110/9112) gives for it.
class PayloadTooLarge(ResourceExhausted):
    http = 413


class LengthRequired(InvalidArgument):
    http = 411


class RequestTimeout(DeadlineExceeded):
    http = 408


class UriTooLong(InvalidArgument):
    http = 414


class HeaderFieldsTooLarge(InvalidArgument):
    http = 431


class UnsupportedMediaType(InvalidArgument):
    http = 415


class ExpectationFailed(InvalidArgument):
    http = 417


class VersionNotSupported(Unimplemented):
    http = 505


def http_status(exc: ServingError) -> int:
    """The HTTP status of an error: the HTTP layer's own, else what TF
    Serving's REST API answers for its gRPC code (`protocol.http_status`)."""
    return getattr(exc, "http", None) or protocol.http_status(exc.code)


def _clean(message: str) -> str:
    """Drop what the Python session wrapper adds ("Graph execution error:",
    "Detected at node ... defined at"), keeping the runtime's own message as
    TF Serving's C++ session would return it."""
    lines = message.splitlines()
    if lines and lines[0].startswith("Graph execution error"):
        lines = lines[1:]
    kept, skipping = [], False
    for line in lines:
        if line.startswith("Detected at node"):
            skipping = True
            continue
        if skipping and (line.startswith("Node: ") or not line.strip() or line.startswith("  ")):
            continue
        skipping = False
        kept.append(line)
    return "\n".join(kept).strip() or message


def from_tf_error(exc: BaseException) -> ServingError:
    """Turn a TensorFlow `OpError` (or anything else) raised by a session run
    into a `ServingError` with the same status code, as TF Serving passes the
    session's status through unchanged."""
    if isinstance(exc, ServingError):
        return exc
    code_value = getattr(exc, "error_code", None)
    message = _clean(getattr(exc, "message", None) or str(exc))
    if code_value is not None:
        for code in grpc.StatusCode:
            if code.value[0] == code_value:
                return ServingError(message, code)
    if isinstance(exc, (ValueError, TypeError)):
        return InvalidArgument(message)
    return ServingError(message, grpc.StatusCode.INTERNAL)
