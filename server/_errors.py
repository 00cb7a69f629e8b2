"""Domain errors of the server, each carrying the gRPC status code TF Serving uses.

The core raises these; the REST front end maps `.code` to HTTP with
`protocol.http_status` (in `_rest.py`) and the gRPC front end aborts with
`.code` (in `_grpc.py`) — each in exactly one place.

>>> e = NotFound("Servable not found for request: Latest(minilm)")
>>> e.code.name, str(e)
('NOT_FOUND', 'Servable not found for request: Latest(minilm)')
"""
from __future__ import annotations

import grpc

__all__ = [
    "ServingError", "InvalidArgument", "NotFound", "FailedPrecondition",
    "Unavailable", "DeadlineExceeded", "Unimplemented", "Internal",
    "ResourceExhausted", "Cancelled", "AlreadyExists", "from_tf_error",
]


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
