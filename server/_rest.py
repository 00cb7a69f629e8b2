"""The REST front end, as TF Serving's `api_rest.md` specifies it: routing.

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            model status
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   model metadata
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict|:classify|:regress

HTTP framing (bodies, limits, timeouts) is `_http`, the JSON codec
`_rest_codec`; errors are domain errors, answered as `{"error": "..."}`
with the status `_errors.http_status` gives. HTTP/1.1 keep-alive, one
thread per connection, at most `--rest_api_num_threads` requests worked on
at once.

>>> server = RestServer(core, "0.0.0.0", 8501)   # doctest: +SKIP
>>> server.start()                                # doctest: +SKIP
"""
from __future__ import annotations

import re
import threading

from . import _rest_codec as codec
from ._core import ModelSpec
from ._errors import InvalidArgument, NotFound, Unavailable
from ._http import HttpServer, Limits, Response, error_response
from ._tensors import all_finite, dumps

__all__ = ["RestServer"]

_PREDICT = re.compile(r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                      r":(classify|regress|predict)")
_MODEL = re.compile(r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                    r"(?:/(metadata))?")
_INT64_MAX = 2**63 - 1


def _spec(name, version, label, signature: str = "") -> ModelSpec:
    if version is not None and int(version) > _INT64_MAX:
        raise InvalidArgument(f"Failed to convert version: {version} to numeric.")
    return ModelSpec(name or "", int(version) if version is not None else None, label, signature)


def _json(payload, fast: bool = True) -> Response:
    return Response(200, dumps(payload, fast))


class RestServer:
    """TF Serving's REST API over a `Core`, on `host:port`."""

    def __init__(self, core, host: str, port: int, timeout_ms: int = 30000,
                 metrics=None, metrics_path: str | None = None,
                 max_body_bytes: int = Limits.max_body_bytes):
        if max_body_bytes <= 0:
            raise ValueError(f"--rest_api_max_body_bytes must be a positive number of bytes, "
                             f"got {max_body_bytes}")
        self.core = core
        self.timeout = timeout_ms / 1000.0 if timeout_ms > 0 else None
        self.metrics, self.metrics_path = metrics, metrics_path
        self._active = 0
        self._stopping = False
        self._cond = threading.Condition()
        limits = Limits(max_body_bytes, self.timeout or Limits.read_timeout)
        self.httpd = HttpServer((host, port), self.handle, limits)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="rest", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def enter(self) -> bool:
        with self._cond:
            if self._stopping:
                return False
            self._active += 1
        return True

    def leave(self) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def stop(self, grace: float = 30.0) -> None:
        """Stop accepting, let requests in flight finish (up to `grace` seconds)."""
        with self._cond:
            self._stopping = True
        self.httpd.shutdown()
        with self._cond:
            self._cond.wait_for(lambda: self._active == 0, grace)
        self.httpd.server_close()

    def handle(self, method: str, path: str, body: bytes) -> Response:
        """One request, counted for draining; errors propagate as `ServingError`."""
        if not self.enter():
            return error_response(Unavailable("Server is shutting down"), close=True)
        try:
            return self.dispatch(method, path, body)
        finally:
            self.leave()

    # -- routing ------------------------------------------------------------
    def dispatch(self, method: str, path: str, body: bytes) -> Response:
        path = path.split("?", 1)[0]
        if method == "GET" and self.metrics is not None and path == self.metrics_path:
            from ._metrics import CONTENT_TYPE
            return Response(200, self.metrics.render().encode("utf-8"), CONTENT_TYPE)
        if method == "POST" and (m := _PREDICT.fullmatch(path)):
            name, version, label, verb = m.groups()
            return self._infer(verb.lower(), name, version, label, body)
        if method == "GET" and (m := _MODEL.fullmatch(path)):
            name, version, label, meta = m.groups()
            spec = _spec(name, version, label)
            if meta:
                return _json(codec.metadata_json(self.core.metadata(spec, entrypoint="REST")))
            if not name:
                raise InvalidArgument("Missing model name in request.")
            return _json(codec.status_json(self.core.status(spec, entrypoint="REST")))
        raise NotFound(f"Malformed request: {method} {path}")

    def _infer(self, verb: str, name: str, version, label, raw: bytes) -> Response:
        body = codec.parse_body(raw)
        spec = _spec(name, version, label, codec.signature_name(body))
        if verb == "predict":
            decode, encode = codec.predict_codec(body)
            result = self.core.predict(spec, decode, timeout=self.timeout, entrypoint="REST")
            return _json(encode(result.outputs), all_finite(result.outputs.values()))
        if verb == "classify":
            result = self.core.classify(spec, lambda: codec.examples(body), timeout=self.timeout,
                                        entrypoint="REST")
            return _json(codec.classify_json(result.result), False)
        result = self.core.regress(spec, lambda: codec.examples(body), timeout=self.timeout,
                                   entrypoint="REST")
        return _json(codec.regress_json(result.result), False)
