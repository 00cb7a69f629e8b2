"""REST transport: TF Serving's JSON API over a pooled `requests.Session`.

Requests use the columnar format (`{"inputs": {...}}` -> `{"outputs": ...}`)
unless `request_format="row"` (`{"instances": [...]}` -> `{"predictions": [...]}`).
Text goes as JSON strings, `bytes` as `{"b64": ...}`. Error bodies
(`{"error": "..."}`) become the `ServingError` subclass of their HTTP status.

>>> from clients import RestClient
>>> with RestClient("http://localhost:8501") as client:            # doctest: +SKIP
...     client.predict("minilm", {"text": ["hello world"]})["embedding"].shape
(1, 384)
"""
from __future__ import annotations

import base64
import json
from typing import Any, Mapping

import numpy as np
import requests
from requests.adapters import HTTPAdapter

from clients._base import SyncClient
from clients._config import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_TIMEOUT, RetryPolicy
from clients._errors import (DeadlineExceededError, RequestTooLargeError, ResponseFormatError,
                             UnavailableError, errors_for_status)
from clients._metadata import ModelMetadata, ModelStatus, SignatureInfo, parse_metadata, parse_status
from clients._tensors import from_json_value, to_json_value
from protocol import REST_PORT, model_url, predict_url

__all__ = ["RestClient", "RestCodec", "REQUEST_FORMATS"]

REQUEST_FORMATS = ("columnar", "row")
_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url


class RestCodec:
    """Builds request bodies and reads responses; no I/O (shared by the sync and async clients)."""

    def __init__(self, url: str, max_request_bytes: int, request_format: str):
        if request_format not in REQUEST_FORMATS:
            raise ValueError(f"request_format must be 'columnar' or 'row', got {request_format!r}")
        self.url = normalize_url(url)
        self.max_request_bytes = max_request_bytes
        self.request_format = request_format

    # ---------------------------------------------------------------- predict
    def predict_request(self, model, arrays: Mapping[str, np.ndarray], sig: SignatureInfo | None,
                        signature_name, version, label) -> tuple[str, bytes]:
        body: dict[str, Any] = {"signature_name": signature_name}
        if self.request_format == "columnar":
            body["inputs"] = {k: to_json_value(v) for k, v in arrays.items()}
        else:
            body["instances"] = _instances(arrays)
        return predict_url(self.url, model, version, label), self._dump(body)

    def predict_response(self, status: int, content: bytes, sig: SignatureInfo | None) -> dict[str, np.ndarray]:
        body = self.check(status, content)
        if "outputs" in body:
            value = body["outputs"]
            named = value if _is_named(value) else {_single_output(sig, "outputs"): value}
        elif "predictions" in body:
            preds = body["predictions"]
            if preds and all(_is_named(p) for p in preds):
                named = {k: [p[k] for p in preds] for k in preds[0]}
            else:
                named = {_single_output(sig, "predictions"): preds}
        else:
            raise ResponseFormatError(f"a predict response needs 'outputs' or 'predictions'; got keys "
                                      f"{sorted(body)}")
        specs = sig.outputs if sig is not None else {}
        try:
            return {k: from_json_value(v, specs[k].dtype if k in specs else None)
                    for k, v in sorted(named.items())}
        except ValueError as exc:
            raise ResponseFormatError(str(exc)) from exc

    # ---------------------------------------------------------------- classify / regress
    def examples_request(self, verb, model, examples, context, signature_name, version, label) -> tuple[str, bytes]:
        if not isinstance(examples, (list, tuple)) or not all(isinstance(e, Mapping) for e in examples):
            raise TypeError(f"examples must be a list of dicts {{feature: value}}, got {type(examples).__name__}")
        body: dict[str, Any] = {"signature_name": signature_name,
                                "examples": [{k: _example_json(v) for k, v in e.items()} for e in examples]}
        if context:
            body["context"] = {k: _example_json(v) for k, v in context.items()}
        return predict_url(self.url, model, version, label, verb=verb), self._dump(body)

    def examples_response(self, verb: str, status: int, content: bytes) -> dict[str, np.ndarray]:
        body = self.check(status, content)
        try:
            results = body["result"] if "result" in body else body["results"]
            if verb == "regress":
                return {"outputs": np.asarray(results, dtype=np.float32).reshape(len(results))}
            k = max((len(r) for r in results), default=0)
            classes = np.full((len(results), k), b"", dtype=object)
            scores = np.zeros((len(results), k), dtype=np.float32)
            for i, row in enumerate(results):
                for j, (cls, score) in enumerate(row):
                    classes[i, j] = cls.encode("utf-8") if isinstance(cls, str) else base64.b64decode(cls["b64"])
                    scores[i, j] = score
            return {"classes": classes, "scores": scores}
        except (KeyError, TypeError, ValueError) as exc:
            raise ResponseFormatError(f"a {verb} response needs 'result' in TF Serving's format: {exc!r}") from exc

    # ---------------------------------------------------------------- metadata / status
    def metadata_url(self, model, version, label) -> str:
        return model_url(self.url, model, version, label) + "/metadata"

    def status_url(self, model, version, label) -> str:
        return model_url(self.url, model, version, label)

    def metadata_response(self, model, status, content) -> ModelMetadata:
        return parse_metadata(self.check(status, content), model)

    def status_response(self, model, status, content) -> ModelStatus:
        return parse_status(self.check(status, content), model)

    # ---------------------------------------------------------------- shared
    def _dump(self, body: Mapping[str, Any]) -> bytes:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if len(data) > self.max_request_bytes:
            raise RequestTooLargeError(
                f"the request body is {len(data)} bytes, over max_request_bytes={self.max_request_bytes}; "
                f"send fewer rows per request (predict_batched splits them) or raise max_request_bytes")
        return data

    @staticmethod
    def check(status: int, content: bytes) -> dict:
        """The JSON body of a 200 answer, or the `ServingError` of an error answer."""
        try:
            body = json.loads(content) if content else {}
        except ValueError:
            body = None
        if status != 200:
            if isinstance(body, dict) and isinstance(body.get("error"), str):
                raise errors_for_status(status, body["error"])
            text = content[:500].decode("utf-8", "replace") if content else ""
            raise errors_for_status(status, f"HTTP {status} without a TF Serving error body: {text!r}")
        if not isinstance(body, dict):
            raise ResponseFormatError(f"expected a JSON object, got {content[:200]!r}")
        return body


def _is_named(value: Any) -> bool:
    return isinstance(value, dict) and not (len(value) == 1 and "b64" in value)


def _single_output(sig: SignatureInfo | None, fallback: str) -> str:
    if sig is not None and len(sig.outputs) == 1:
        return next(iter(sig.outputs))
    return fallback


def _instances(arrays: Mapping[str, np.ndarray]) -> list:
    rows = {arr.shape[0] if arr.ndim else None for arr in arrays.values()}
    if None in rows or len(rows) != 1:
        raise ValueError(f"the row format needs every input batched with the same number of rows, got "
                         f"shapes { {k: v.shape for k, v in arrays.items()} }; use request_format='columnar'")
    columns = {k: to_json_value(v) for k, v in arrays.items()}
    if len(columns) == 1:
        return next(iter(columns.values()))
    n = rows.pop()
    return [{k: col[i] for k, col in columns.items()} for i in range(n)]


def _example_json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_example_json(v) for v in value]
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, np.generic):
        return value.item()
    return value


class RestClient(SyncClient):
    """TF Serving's REST API with a pooled, keep-alive `requests.Session`.

    >>> with RestClient("http://localhost:8501", timeout=10) as client:   # doctest: +SKIP
    ...     client.wait_until_available("minilm")
    ...     client.predict_batched("minilm", ["a", "b", "c"])["embedding"].shape
    (3, 384)
    """

    transport = "rest"

    def __init__(self, url: str = f"http://localhost:{REST_PORT}", *, timeout: float | None = DEFAULT_TIMEOUT,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, retry: RetryPolicy | None = RetryPolicy(),
                 request_format: str = "columnar", pool_size: int = 32):
        super().__init__(timeout=timeout, max_request_bytes=max_request_bytes, retry=retry)
        self._codec = RestCodec(url, self.max_request_bytes, request_format)
        self._address = self.url = self._codec.url
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def close(self) -> None:
        self._session.close()

    def _call(self, method: str, url: str, body: bytes | None, timeout) -> tuple[int, bytes]:
        try:
            response = self._session.request(method, url, data=body, headers=_JSON_HEADERS, timeout=timeout)
            return response.status_code, response.content
        except requests.exceptions.Timeout as exc:
            raise DeadlineExceededError(f"no answer from {url} within timeout={timeout} s; raise the "
                                        f"timeout or send fewer rows per request") from exc
        except requests.exceptions.RequestException as exc:
            raise UnavailableError(f"cannot reach {url}: {exc}") from exc

    def _send_predict(self, model, arrays, sig, signature_name, version, label, timeout):
        url, body = self._codec.predict_request(model, arrays, sig, signature_name, version, label)
        return self._codec.predict_response(*self._call("POST", url, body, timeout), sig)

    def _send_examples(self, verb, model, examples, context, signature_name, version, label, timeout):
        url, body = self._codec.examples_request(verb, model, examples, context, signature_name, version, label)
        return self._codec.examples_response(verb, *self._call("POST", url, body, timeout))

    def _fetch_metadata(self, model, version, label, timeout):
        url = self._codec.metadata_url(model, version, label)
        return self._codec.metadata_response(model, *self._call("GET", url, None, timeout))

    def _fetch_status(self, model, version, label, timeout):
        url = self._codec.status_url(model, version, label)
        return self._codec.status_response(model, *self._call("GET", url, None, timeout))
