"""The REST front end, as TF Serving's `api_rest.md` specifies it.

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            model status
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   model metadata
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict|:classify|:regress

Errors are `{"error": "..."}` with the HTTP status `protocol.http_status`
gives for the core's gRPC code (the one place that mapping happens). HTTP/1.1
keep-alive, one thread per connection, at most `--rest_api_num_threads`
requests worked on at once.

>>> server = RestServer(core, "0.0.0.0", 8501)   # doctest: +SKIP
>>> server.start()                                # doctest: +SKIP
"""
from __future__ import annotations

import gzip
import json
import logging
import re
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import protocol

from . import _inference
from ._core import ModelSpec
from ._errors import InvalidArgument, ServingError
from ._messages import metadata_response, status_response, to_json_dict
from ._tensors import all_finite, array_to_json, b64_value, dumps, json_to_array, loads

__all__ = ["RestServer"]

log = logging.getLogger("server")

_PREDICT = re.compile(r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                      r":(classify|regress|predict)")
_MODEL = re.compile(r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                    r"(?:/(metadata))?")


# -- JSON <-> core ----------------------------------------------------------
def _parse_body(raw: bytes):
    try:
        body = loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"JSON Parse error: {e}; the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidArgument(f"JSON Parse error: expected a JSON object, got {type(body).__name__}")
    return body


def _signature_name(body) -> str:
    name = body.get("signature_name", "")
    if not isinstance(name, str):
        raise InvalidArgument(f"'signature_name' must be a string, got {json.dumps(name)}")
    return name


def _decode_rows(instances, sig) -> dict:
    if not isinstance(instances, list):
        raise InvalidArgument(f"Excepting 'instances' to be an list/array, got {type(instances).__name__}")
    if not instances:
        raise InvalidArgument("'instances' is an empty list/array: send at least one instance")
    named = isinstance(instances[0], dict) and not b64_value(instances[0])
    if named:
        keys = set(instances[0])
        for i, inst in enumerate(instances):
            if not isinstance(inst, dict) or b64_value(inst) or set(inst) != keys:
                got = sorted(inst) if isinstance(inst, dict) else type(inst).__name__
                raise InvalidArgument(f"Failed to process element: {i} of 'instances' list. JSON object "
                                      f"with keys {got} does not match the keys of element 0 "
                                      f"{sorted(keys)}; every instance needs the same named inputs")
        _inference.check_inputs(sig, keys)
        out = {}
        for key in keys:
            try:
                out[key] = json_to_array([inst[key] for inst in instances], sig.inputs[key].dtype, key)
            except InvalidArgument as e:
                raise InvalidArgument(f"Failed to process element of 'instances' list, key: {key}. "
                                      f"Error: {e}") from None
        return out
    if len(sig.inputs) != 1:
        raise InvalidArgument(f"Failed to process element: 0 of 'instances' list. Error: Expecting "
                              f"object but got {type(instances[0]).__name__}: the signature has inputs "
                              f"{_inference.sorted_set(sig.inputs)}, so each instance must be a JSON "
                              f"object keyed by input name")
    (key, info), = sig.inputs.items()
    try:
        return {key: json_to_array(instances, info.dtype, key)}
    except InvalidArgument as e:
        raise InvalidArgument(f"Failed to process 'instances' list: {e}") from None


def _decode_columns(inputs, sig) -> dict:
    if isinstance(inputs, dict) and not b64_value(inputs):
        _inference.check_inputs(sig, inputs.keys())
        out = {}
        for key, value in inputs.items():
            try:
                out[key] = json_to_array(value, sig.inputs[key].dtype, key)
            except InvalidArgument as e:
                raise InvalidArgument(f"Failed to process 'inputs' key: {key}. Error: {e}") from None
        return out
    if len(sig.inputs) != 1:
        raise InvalidArgument(f"'inputs' is not an object of named tensors but the signature has "
                              f"inputs {_inference.sorted_set(sig.inputs)}; send "
                              f"{{\"inputs\": {{\"name\": value, ...}}}}")
    (key, info), = sig.inputs.items()
    try:
        return {key: json_to_array(inputs, info.dtype, key)}
    except InvalidArgument as e:
        raise InvalidArgument(f"Failed to process 'inputs': {e}") from None


def _rows_json(outputs: dict):
    sizes = {}
    for name, arr in outputs.items():
        if arr.ndim == 0:
            raise InvalidArgument(f"Tensor name: {name} has no shape information; a scalar output "
                                  f"cannot be returned in row format (use \"inputs\" for columnar format)")
        sizes[name] = arr.shape[0]
    if len(set(sizes.values())) > 1:
        first = next(iter(sizes))
        bad = next(n for n in sizes if sizes[n] != sizes[first])
        raise InvalidArgument(f"Tensor name: {bad} has inconsistent batch size: {sizes[bad]} "
                              f"expecting: {sizes[first]} (use \"inputs\" for columnar format)")
    if len(outputs) == 1:
        (name, arr), = outputs.items()
        return array_to_json(arr, name)
    columns = {name: array_to_json(arr, name) for name, arr in outputs.items()}
    n = next(iter(sizes.values()))
    return [{name: col[i] for name, col in columns.items()} for i in range(n)]


def _columns_json(outputs: dict):
    if len(outputs) == 1:
        (name, arr), = outputs.items()
        return array_to_json(arr, name)
    return {name: array_to_json(arr, name) for name, arr in outputs.items()}


def _feature(value, where: str):
    from tensorflow.core.example import feature_pb2
    values = value if isinstance(value, list) else [value]
    if not values:
        raise InvalidArgument(f"{where}: an empty list has no type; give at least one value")
    if all(isinstance(v, str) or b64_value(v) for v in values):
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(
            value=[json_to_array(v, "object").item() for v in values]))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=values))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=values))
    raise InvalidArgument(f"{where}: feature values must be all strings (or {{\"b64\": ...}}), all "
                          f"integers or all numbers; got {json.dumps(value)[:80]}")


def _example(obj, where: str) -> bytes:
    from tensorflow.core.example import example_pb2
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{where}: expected a JSON object of features, got {json.dumps(obj)[:80]}")
    ex = example_pb2.Example()
    for key, value in obj.items():
        ex.features.feature[key].CopyFrom(_feature(value, f"{where} feature '{key}'"))
    return ex.SerializeToString()


def _examples(body) -> list[bytes]:
    if "examples" not in body:
        raise InvalidArgument("Missing 'examples' key: send {\"examples\": [{\"feature\": value}, ...]}")
    examples = body["examples"]
    if not isinstance(examples, list):
        raise InvalidArgument("'examples' is not an array")
    if not examples:
        raise InvalidArgument("Input is empty.")
    context = _example(body["context"], "'context'") if "context" in body else b""
    return [context + _example(e, f"'examples' element {i}") for i, e in enumerate(examples)]


# -- HTTP ---------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TensorFlowServing"
    rest: "RestServer"

    def setup(self):
        super().setup()
        # Small responses on keep-alive connections: do not let Nagle wait for an ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):  # access logs would flood stderr under load
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n")
        if self.close_connection:
            head += "Connection: close\r\n"
        self.wfile.write(head.encode("latin-1") + b"\r\n" + body)

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raw = self._chunks()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                raw = gzip.decompress(raw)
            except OSError as e:
                raise InvalidArgument(f"Content-Encoding is gzip but the body is not: {e}") from None
        return raw

    def _chunks(self) -> bytes:
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk

    def _handle(self, method: str) -> None:
        rest = self.rest
        try:
            body = self._body() if method == "POST" else b""
        except (OSError, ValueError, InvalidArgument) as e:
            self.close_connection = True
            self._send(400, dumps({"error": str(e)}))
            return
        if not rest.enter():
            self.close_connection = True
            self._send(503, dumps({"error": "Server is shutting down"}))
            return
        try:
            status, payload, ctype = rest.dispatch(method, self.path, body)
        except ServingError as e:
            status, payload, ctype = protocol.http_status(e.code), dumps({"error": e.message}), None
        except Exception as e:  # a bug must not kill the connection thread silently
            log.exception("REST request failed: %s %s", method, self.path)
            status, payload, ctype = 500, dumps({"error": f"{type(e).__name__}: {e}"}), None
        finally:
            rest.leave()
        self._send(status, payload, ctype or "application/json")

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")


class RestServer:
    """TF Serving's REST API over a `Core`, on `host:port`."""

    def __init__(self, core, host: str, port: int, timeout_ms: int = 30000, num_threads: int = 0,
                 metrics=None, metrics_path: str | None = None):
        self.core = core
        self.timeout = timeout_ms / 1000.0 if timeout_ms > 0 else None
        self.metrics, self.metrics_path = metrics, metrics_path
        self._slots = threading.BoundedSemaphore(num_threads) if num_threads > 0 else None
        self._active = 0
        self._stopping = False
        self._cond = threading.Condition()
        handler = type("Handler", (_Handler,), {"rest": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="rest", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def enter(self) -> bool:
        with self._cond:
            if self._stopping:
                return False
            self._active += 1
        if self._slots is not None:
            self._slots.acquire()
        return True

    def leave(self) -> None:
        if self._slots is not None:
            self._slots.release()
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

    # -- routing ------------------------------------------------------------
    def dispatch(self, method: str, path: str, body: bytes):
        path = path.split("?", 1)[0]
        if method == "GET" and self.metrics is not None and path == self.metrics_path:
            from ._metrics import CONTENT_TYPE
            return 200, self.metrics.render().encode("utf-8"), CONTENT_TYPE
        if method == "POST":
            m = _PREDICT.fullmatch(path)
            if m:
                name, version, label, verb = m.groups()
                payload, fast = self._infer(verb.lower(), name, version, label, body)
                return 200, dumps(payload, fast), None
        elif method == "GET":
            m = _MODEL.fullmatch(path)
            if m:
                name, version, label, meta = m.groups()
                spec = ModelSpec(name or "", int(version) if version else None, label)
                if meta:
                    resp = metadata_response(self.core.metadata(spec, entrypoint="REST"))
                    return 200, dumps({
                        "model_spec": to_json_dict(resp.model_spec),
                        "metadata": {"signature_def": to_json_dict(
                            _unpack_signature_map(resp.metadata["signature_def"]))}}), None
                if not name:
                    raise InvalidArgument("Missing model name in request.")
                return 200, dumps(to_json_dict(status_response(self.core.status(spec, entrypoint="REST")))), None
        return 404, dumps({"error": f"Malformed request: {method} {path}"}), None

    def _infer(self, verb: str, name: str, version, label, raw: bytes):
        body = _parse_body(raw)
        spec = ModelSpec(name, int(version) if version else None, label, _signature_name(body))
        if verb == "predict":
            has_rows, has_cols = "instances" in body, "inputs" in body
            if has_rows == has_cols:
                raise InvalidArgument("Missing 'inputs' or 'instances' key" if not has_rows else
                                      "Not both 'inputs' and 'instances' can be set: 'instances' is "
                                      "the row format, 'inputs' the columnar one")
            if has_rows:
                result = self.core.predict(spec, lambda sig: _decode_rows(body["instances"], sig),
                                           timeout=self.timeout, entrypoint="REST")
                return {"predictions": _rows_json(result.outputs)}, all_finite(result.outputs.values())
            result = self.core.predict(spec, lambda sig: _decode_columns(body["inputs"], sig),
                                       timeout=self.timeout, entrypoint="REST")
            return {"outputs": _columns_json(result.outputs)}, all_finite(result.outputs.values())
        if verb == "classify":
            result = self.core.classify(spec, lambda: _examples(body), timeout=self.timeout,
                                        entrypoint="REST")
            return {"result": [[[label or "", score or 0.0] for label, score in row]
                               for row in result.result]}, False
        result = self.core.regress(spec, lambda: _examples(body), timeout=self.timeout,
                                   entrypoint="REST")
        return {"result": result.result}, False


def _unpack_signature_map(packed):
    from tensorflow_serving.apis import get_model_metadata_pb2
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    packed.Unpack(sig_map)
    return sig_map
