"""REST transport: TF Serving's JSON API; `RestClient` over a pooled `requests.Session`,
`AsyncRestClient` over a pooled `httpx.AsyncClient`.

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

import httpx
import numpy as np
import requests
from requests.adapters import HTTPAdapter

from clients._async import AsyncClient
from clients._config import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_TIMEOUT, RetryPolicy
from clients._errors import (DeadlineExceededError, RequestTooLargeError, ResponseFormatError,
                             UnavailableError, errors_for_status)
from clients._metadata import ModelMetadata, ModelStatus, SignatureInfo, parse_metadata, parse_status
from clients._sync import SyncClient
from clients._tensors import from_json_value, to_json_value
from protocol import REST_PORT, model_url, predict_url

DEFAULT_ADDRESS = f"http://localhost:{REST_PORT}"

__all__ = ["RestClient", "AsyncRestClient", "RestCodec", "REQUEST_FORMATS"]

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
            # TF Serving answers "results"; older versions of this project's server said "result"
            results = body["results"] if "results" in body else body["result"]
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
            raise ResponseFormatError(f"a {verb} response needs 'results' (or 'result') in TF Serving's "
                                      f"format: {exc!r}") from exc

    # ---------------------------------------------------------------- metadata / status
    def metadata_url(self, model, version, label) -> str:
        return model_url(self.url, model, version, label) + "/metadata"

    def status_url(self, model, version, label) -> str:
        return model_url(self.url, model, version, label)

    def metadata_response(self, model, status, content) -> ModelMetadata:
        return parse_metadata(self.check(status, content), model)

    def status_response(self, model, status, content) -> ModelStatus:
        return parse_status(self.check(status, content), model)

    # ---------------------------------------------------------------- sizes
    @staticmethod
    def row_nbytes(arr: np.ndarray) -> np.ndarray:
        """An upper estimate of the JSON text each row (along axis 0) adds to a request.

        >>> RestCodec.row_nbytes(np.array(["ab", 'say "hi"'], dtype=object)).tolist()
        [6, 22]
        """
        n = arr.shape[0]
        per_row = int(np.prod(arr.shape[1:], dtype=np.int64))
        if arr.dtype == object:
            flat = arr.reshape(n, -1) if n else arr.reshape(0, per_row)
            return np.fromiter((sum(_json_len(x) for x in row) for row in flat), dtype=np.int64, count=n)
        # floats print up to ~25 characters, ints up to 21, bools 5, plus ", "
        width = {"f": 26, "i": 22, "u": 22, "b": 7}.get(arr.dtype.kind, 26)
        return np.full(n, per_row * width + 2 * max(1, arr.ndim), dtype=np.int64)

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


def _json_len(x: Any) -> int:
    if isinstance(x, bytes):
        return 4 * ((len(x) + 2) // 3) + 12  # {"b64": "..."},
    text = x if isinstance(x, str) else str(x)
    raw = len(text.encode("utf-8"))
    # escapes: quotes, backslashes and control characters grow (at most \u00XX = 6 bytes)
    specials = sum(1 for c in text if c in '"\\' or c < " ")
    return raw + 5 * specials + 4


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


class _RestTransport:
    """What `RestClient` and `AsyncRestClient` share: the codec and the hooks around one `_call`."""

    _codec: RestCodec

    def _setup(self, url: str | None, request_format: str) -> None:
        if url is not None:  # the keyword's name before every client took `address`
            self.address = url
        self._codec = RestCodec(self.address, self.max_request_bytes, request_format)
        self.address = self._codec.url

    @property
    def url(self) -> str:
        """The server's base URL (`address`, normalised)."""
        return self.address

    def _request_predict(self, model, arrays, sig, signature_name, version, label):
        return ("POST", *self._codec.predict_request(model, arrays, sig, signature_name, version, label))

    def _request_examples(self, verb, model, examples, context, signature_name, version, label):
        return ("POST", *self._codec.examples_request(verb, model, examples, context, signature_name,
                                                      version, label))

    def _request_metadata(self, model, version, label):
        return "GET", self._codec.metadata_url(model, version, label), None

    def _request_status(self, model, version, label):
        return "GET", self._codec.status_url(model, version, label), None


def _deadline_exceeded(url: str, timeout) -> DeadlineExceededError:
    return DeadlineExceededError(f"no answer from {url} within timeout={timeout} s; raise the "
                                 f"timeout or send fewer rows per request")


class RestClient(_RestTransport, SyncClient):
    """TF Serving's REST API with a pooled, keep-alive `requests.Session`.

    >>> with RestClient("http://localhost:8501", timeout=10) as client:   # doctest: +SKIP
    ...     client.wait_until_available("minilm")
    ...     client.predict_batched("minilm", ["a", "b", "c"])["embedding"].shape
    (3, 384)
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, *, timeout: float | None = DEFAULT_TIMEOUT,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, retry: RetryPolicy | None = RetryPolicy(),
                 request_format: str = "columnar", pool_size: int = 32, url: str | None = None):
        super().__init__(address, timeout=timeout, max_request_bytes=max_request_bytes, retry=retry)
        self._setup(url, request_format)
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
            raise _deadline_exceeded(url, timeout) from exc
        except requests.exceptions.RequestException as exc:
            raise UnavailableError(f"cannot reach {url}: {exc}") from exc

    def _send_predict(self, model, arrays, sig, signature_name, version, label, timeout):
        request = self._request_predict(model, arrays, sig, signature_name, version, label)
        return self._codec.predict_response(*self._call(*request, timeout), sig)

    def _send_examples(self, verb, model, examples, context, signature_name, version, label, timeout):
        request = self._request_examples(verb, model, examples, context, signature_name, version, label)
        return self._codec.examples_response(verb, *self._call(*request, timeout))

    def _fetch_metadata(self, model, version, label, timeout):
        request = self._request_metadata(model, version, label)
        return self._codec.metadata_response(model, *self._call(*request, timeout))

    def _fetch_status(self, model, version, label, timeout):
        request = self._request_status(model, version, label)
        return self._codec.status_response(model, *self._call(*request, timeout))


class AsyncRestClient(_RestTransport, AsyncClient):
    """`RestClient`, awaitable, over a pooled `httpx.AsyncClient`."""

    def __init__(self, address: str = DEFAULT_ADDRESS, *, timeout: float | None = DEFAULT_TIMEOUT,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, retry: RetryPolicy | None = RetryPolicy(),
                 request_format: str = "columnar", pool_size: int = 32, url: str | None = None):
        super().__init__(address, timeout=timeout, max_request_bytes=max_request_bytes, retry=retry)
        self._setup(url, request_format)
        self._http = httpx.AsyncClient(
            headers=_JSON_HEADERS, timeout=None, trust_env=False,
            limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size))

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, url: str, body: bytes | None, timeout) -> tuple[int, bytes]:
        try:
            response = await self._http.request(method, url, content=body, timeout=timeout)
            return response.status_code, response.content
        except httpx.TimeoutException as exc:
            raise _deadline_exceeded(url, timeout) from exc
        except httpx.TransportError as exc:
            raise UnavailableError(f"cannot reach {url}: {exc!r}") from exc

    async def _send_predict(self, model, arrays, sig, signature_name, version, label, timeout):
        request = self._request_predict(model, arrays, sig, signature_name, version, label)
        return self._codec.predict_response(*(await self._call(*request, timeout)), sig)

    async def _send_examples(self, verb, model, examples, context, signature_name, version, label, timeout):
        request = self._request_examples(verb, model, examples, context, signature_name, version, label)
        return self._codec.examples_response(verb, *(await self._call(*request, timeout)))

    async def _fetch_metadata(self, model, version, label, timeout):
        request = self._request_metadata(model, version, label)
        return self._codec.metadata_response(model, *(await self._call(*request, timeout)))

    async def _fetch_status(self, model, version, label, timeout):
        request = self._request_status(model, version, label)
        return self._codec.status_response(model, *(await self._call(*request, timeout)))
