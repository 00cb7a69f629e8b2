"""REST and gRPC clients for TF Serving (and this project's server) with one API.

    RestClient / GrpcClient              blocking; requests / grpcio
    AsyncRestClient / AsyncGrpcClient    asyncio; httpx / grpc.aio

All four take the server's address first (`address`: a URL for REST, a gRPC
target for gRPC) and the same settings, have the same methods with the same
arguments (`timeout` in seconds everywhere) and return the same results: `predict`, `predict_batched`,
`classify`, `regress`, `metadata`, `status`, `wait_until_available`. Errors
from either transport are the same `ServingError` subclasses.

>>> from clients import RestClient, GrpcClient
>>> with GrpcClient("localhost:8500") as client:                        # doctest: +SKIP
...     client.wait_until_available("minilm", timeout=60)
...     result = client.predict_batched("minilm", ["first text", "second text"] * 50_000)
...     result["embedding"].shape
(100000, 384)

Command line: `python -m clients predict --model minilm --text "hello"`.
"""
from clients._async import AsyncClient
from clients._base import BaseClient
from clients._batching import BatchResult
from clients._config import (DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, DEFAULT_MAX_REQUEST_BYTES,
                             DEFAULT_TIMEOUT, NOT_GIVEN, NotGiven, RetryPolicy)
from clients._errors import (AbortedError, BatchPredictionError, DeadlineExceededError, InternalError,
                             InvalidArgumentError, NotFoundError, PermissionDeniedError,
                             RequestCancelledError, RequestTooLargeError, ResourceExhaustedError,
                             ResponseFormatError, RetryableError, ServingError, UnauthenticatedError,
                             UnavailableError, UnimplementedError, error_from_grpc, errors_for_status)
from clients._grpc import AsyncGrpcClient, GrpcClient
from clients._metadata import ModelMetadata, ModelStatus, SignatureInfo, VersionStatus
from clients._rest import AsyncRestClient, RestClient
from clients._sync import SyncClient
from clients._tasks import answers, entities
from clients._tensors import TensorSpec

__all__ = [
    # clients
    "RestClient",
    "GrpcClient",
    "AsyncRestClient",
    "AsyncGrpcClient",
    "BaseClient",
    "SyncClient",
    "AsyncClient",
    # settings
    "RetryPolicy",
    "NOT_GIVEN",
    "NotGiven",
    "DEFAULT_TIMEOUT",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_REQUEST_BYTES",
    # results
    "BatchResult",
    "ModelMetadata",
    "ModelStatus",
    "SignatureInfo",
    "TensorSpec",
    # token-level task outputs -> Python objects
    "entities",
    "answers",
    "VersionStatus",
    # errors
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
