"""TF Serving protocol facts shared by `server/` and `clients/`.

Every literal that TF Serving defines (ports, URL layout, signature and tag
names, the warmup file location, how gRPC status codes map to HTTP) lives
here, so the embedded server and the clients cannot drift apart.

>>> predict_url("http://localhost:8501", "minilm", version=2)
'http://localhost:8501/v1/models/minilm/versions/2:predict'
"""
from __future__ import annotations

import grpc

__all__ = [
    "GRPC_PORT",
    "REST_PORT",
    "SERVE_TAG",
    "DEFAULT_SIGNATURE",
    "PREDICT_METHOD",
    "CLASSIFY_METHOD",
    "REGRESS_METHOD",
    "WARMUP_DIR",
    "WARMUP_FILE",
    "WARMUP_MAX_RECORDS",
    "HTTP_STATUS",
    "http_status",
    "model_url",
    "predict_url",
]

GRPC_PORT = 8500
REST_PORT = 8501
SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"

# SignatureDef method names (tensorflow/python/saved_model/signature_constants.py).
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

# saved_model_warmup.md: <version dir>/assets.extra/tf_serving_warmup_requests,
# at most 1000 records are replayed.
WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
WARMUP_MAX_RECORDS = 1000

# How TF Serving's REST front end turns a status code into an HTTP status
# (tensorflow_serving/model_servers/http_rest_api_util: ToHTTPStatusCode).
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status TF Serving's REST API answers for a gRPC status code."""
    return HTTP_STATUS.get(code, 500)


def model_url(base: str, model: str, version: int | None = None, label: str | None = None) -> str:
    """`{base}/v1/models/{model}[/versions/{v}|/labels/{l}]` as in api_rest.md."""
    if version is not None and label is not None:
        raise ValueError("give a version or a label, not both")
    url = f"{base.rstrip('/')}/v1/models/{model}"
    if version is not None:
        url += f"/versions/{int(version)}"
    elif label is not None:
        url += f"/labels/{label}"
    return url


def predict_url(base: str, model: str, version: int | None = None, label: str | None = None,
                verb: str = "predict") -> str:
    """The URL of a `:predict`, `:classify` or `:regress` call."""
    if verb not in ("predict", "classify", "regress"):
        raise ValueError(f"verb must be predict, classify or regress, got {verb!r}")
    return f"{model_url(base, model, version, label)}:{verb}"
