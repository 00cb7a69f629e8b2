"""The one core both front ends call: resolve a model spec to a loaded
version, run Predict/Classify/Regress/MultiInference on it, answer metadata,
status and config reloads, and count every request for monitoring.

Front ends only convert wire types. Inputs are passed as a function of the
resolved SignatureDef, because REST needs the signature's dtypes to read JSON.

>>> core = Core(repository)                                               # doctest: +SKIP
>>> r = core.predict(ModelSpec("m"), lambda sig: {"x": np.ones(1, np.float32)})  # doctest: +SKIP
>>> r.version, r.outputs["y"]                                             # doctest: +SKIP
(2, array([2.5], dtype=float32))
"""
from __future__ import annotations

import dataclasses
import threading
import time

import grpc
from google.protobuf import text_format

import protocol

from . import _inference
from ._config import parse_model_config
from ._errors import InvalidArgument, ServingError, Unavailable

__all__ = ["Core", "ModelSpec", "Result"]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Which model, version (or label) and signature a request names."""
    name: str
    version: int | None = None
    label: str | None = None
    signature_name: str = ""


@dataclasses.dataclass
class Result:
    name: str
    version: int
    signature_name: str
    outputs: dict = None        # predict: alias -> array
    signature: object = None    # the SignatureDef used
    result: list = None         # classify: [[(label, score)]], regress: [value]
    method: str = ""


class Core:
    """Inference and model management over a `Repository`."""

    def __init__(self, repository, metrics=None, check_method: bool = False):
        self.repository = repository
        self.metrics = metrics
        self.check_method = check_method
        self._inflight = 0
        self._closed = False
        self._idle = threading.Condition()

    # -- bookkeeping ----------------------------------------------------------
    def _begin(self):
        with self._idle:
            if self._closed:
                raise Unavailable("The server is shutting down")
            self._inflight += 1
        return time.monotonic()

    def close(self) -> None:
        """Refuse every new request from now on (draining starts)."""
        with self._idle:
            self._closed = True

    def _end(self, start, api, entrypoint, spec, code, signature=""):
        with self._idle:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.notify_all()
        if self.metrics is not None:
            self.metrics.request(spec.name if spec else "", signature, api, entrypoint,
                                 code, time.monotonic() - start)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until no request is in flight; False if `timeout` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)

    def _call(self, api: str, entrypoint: str, spec: ModelSpec, fn):
        if not spec.name:
            raise InvalidArgument("Missing ModelSpec: the request must name a model")
        start = self._begin()
        code, signature = grpc.StatusCode.OK, spec.signature_name or protocol.DEFAULT_SIGNATURE
        try:
            servable = self.repository.acquire(spec.name, spec.version, spec.label)
            try:
                return fn(servable)
            finally:
                servable.release()
        except ServingError as e:
            code = e.code
            raise
        except Exception:
            code = grpc.StatusCode.INTERNAL
            raise
        finally:
            self._end(start, api, entrypoint, spec, code, signature)

    # -- inference ------------------------------------------------------------
    def predict(self, spec: ModelSpec, make_inputs, output_filter=(), timeout=None,
                entrypoint: str = "GRPC") -> Result:
        """Predict. `make_inputs(signature_def)` returns {alias: np.ndarray}."""
        def run(servable):
            sig = _inference.predict_signature(servable, spec.signature_name)
            inputs = make_inputs(sig)
            name, outputs = _inference.predict(servable, spec.signature_name, inputs,
                                               list(output_filter), timeout)
            return Result(spec.name, servable.version, name, outputs=outputs, signature=sig,
                          method=protocol.PREDICT_METHOD)
        return self._call("predict", entrypoint, spec, run)

    def classify(self, spec: ModelSpec, examples, timeout=None, entrypoint: str = "GRPC") -> Result:
        """Classify serialized tf.Examples (a list, or a function returning one)."""
        def run(servable):
            ex = examples() if callable(examples) else examples
            name, result = _inference.classify(servable, spec.signature_name, ex, timeout,
                                               self.check_method)
            return Result(spec.name, servable.version, name, result=result,
                          method=protocol.CLASSIFY_METHOD)
        return self._call("classify", entrypoint, spec, run)

    def regress(self, spec: ModelSpec, examples, timeout=None, entrypoint: str = "GRPC") -> Result:
        """Regress serialized tf.Examples (a list, or a function returning one)."""
        def run(servable):
            ex = examples() if callable(examples) else examples
            name, result = _inference.regress(servable, spec.signature_name, ex, timeout,
                                              self.check_method)
            return Result(spec.name, servable.version, name, result=result,
                          method=protocol.REGRESS_METHOD)
        return self._call("regress", entrypoint, spec, run)

    def multi_inference(self, tasks: list[tuple[ModelSpec, str]], examples, timeout=None,
                        entrypoint: str = "GRPC") -> list[Result]:
        """Several classify/regress tasks over one input, on one model version."""
        if not tasks:
            raise InvalidArgument("MultiInferenceRequest must contain at least one task")
        first = tasks[0][0]
        seen = set()
        for spec, method in tasks:
            if spec.name != first.name:
                raise InvalidArgument("All ModelSpecs in a MultiInferenceRequest must access the "
                                      "same model name.")
            if (spec.version, spec.label) != (first.version, first.label):
                raise InvalidArgument("All ModelSpecs in a MultiInferenceRequest must access the "
                                      "same model version.")
            sig = spec.signature_name or protocol.DEFAULT_SIGNATURE
            if sig in seen:
                raise InvalidArgument(f"Duplicate evaluation of signature: {sig}")
            seen.add(sig)
            if method not in (protocol.CLASSIFY_METHOD, protocol.REGRESS_METHOD):
                raise InvalidArgument(f"Unsupported signature method_name: {method}")

        def run(servable):
            ex = examples() if callable(examples) else examples
            out = []
            for spec, method in tasks:
                fn = _inference.classify if method == protocol.CLASSIFY_METHOD else _inference.regress
                name, result = fn(servable, spec.signature_name, ex, timeout, self.check_method)
                out.append(Result(spec.name, servable.version, name, result=result, method=method))
            return out
        return self._call("multi_inference", entrypoint, first, run)

    # -- model management ---------------------------------------------------
    def metadata(self, spec: ModelSpec, fields=("signature_def",)) -> tuple[Result, dict]:
        """GetModelMetadata: the resolved spec and {signature name: SignatureDef}."""
        if not spec.name:
            raise InvalidArgument("Missing ModelSpec: the request must name a model")
        if not fields:
            raise InvalidArgument("GetModelMetadataRequest must specify at least one metadata_field")
        for field in fields:
            if field != "signature_def":
                raise InvalidArgument(f"Metadata field {field} is not supported; the only "
                                      f"metadata_field is signature_def")
        servable = self.repository.acquire(spec.name, spec.version, spec.label)
        try:
            return (Result(spec.name, servable.version, spec.signature_name),
                    dict(servable.signature_defs))
        finally:
            servable.release()

    def status(self, spec: ModelSpec):
        """GetModelStatus: `VersionStatus` list, newest first."""
        if not spec.name:
            raise InvalidArgument("Missing ModelSpec: the request must name a model")
        return self.repository.status(spec.name, spec.version, spec.label)

    def reload_config(self, server_config, cancelled=None) -> None:
        """HandleReloadConfigRequest: serve exactly the models of `server_config`
        (not applied if `cancelled()` turns true before it could be)."""
        # The same checks as a config file gets (names, base paths, platform).
        parse_model_config(text_format.MessageToString(server_config), "ReloadConfigRequest")
        self.repository.apply_config(server_config, cancelled)
