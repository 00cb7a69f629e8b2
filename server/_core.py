"""The one core both front ends call: resolve a model spec to a loaded
version, run Predict/Classify/Regress/MultiInference on it, answer metadata,
status and config reloads, and count every request for monitoring.

Front ends only convert wire types. Inputs are passed as a function of the
resolved SignatureDef, because REST needs the signature's dtypes to read JSON.
Requests that run the model wait for their turn in one `Admission` queue,
whichever front end they came by, and their timeout covers that wait.

>>> core = Core(repository)                                               # doctest: +SKIP
>>> r = core.predict(ModelSpec("m"), lambda sig: {"x": np.ones(1, np.float32)}, entrypoint="REST")  # doctest: +SKIP
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
from ._servable import run_examples

__all__ = ["Core", "ModelSpec", "PredictResult", "ExamplesResult", "MetadataResult"]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Which model, version (or label) and signature a request names."""
    name: str
    version: int | None = None
    label: str | None = None
    signature_name: str = ""


@dataclasses.dataclass(frozen=True)
class PredictResult:
    """A Predict's outputs, and the version and SignatureDef that made them."""
    name: str
    version: int
    signature_name: str
    outputs: dict           # output alias -> np.ndarray
    signature: object       # the SignatureDef used (output dtypes for the wire)


@dataclasses.dataclass(frozen=True)
class ExamplesResult:
    """A Classify or Regress over tf.Examples (`method` says which)."""
    name: str
    version: int
    signature_name: str
    method: str             # protocol.CLASSIFY_METHOD or protocol.REGRESS_METHOD
    result: list            # classify: [[(label, score), ...] per example]; regress: [value, ...]


@dataclasses.dataclass(frozen=True)
class MetadataResult:
    """GetModelMetadata: the resolved version and its SignatureDefs."""
    name: str
    version: int
    signature_name: str
    signature_defs: dict    # signature name -> SignatureDef


class Core:
    """Inference and model management over a `Repository`."""

    def __init__(self, repository, metrics=None, check_method: bool = False, admission=None):
        self.repository = repository
        self.metrics = metrics
        self.check_method = check_method
        self.admission = admission
        self._inflight = 0
        self._closed = False
        self._idle = threading.Condition()

    # -- bookkeeping ----------------------------------------------------------
    def close(self) -> None:
        """Refuse every new request from now on (draining starts)."""
        with self._idle:
            self._closed = True

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until no request is in flight; False if `timeout` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)

    def _track(self, api: str, entrypoint: str, spec: ModelSpec, fn):
        """Run `fn()` as one request: refused once draining started, counted in
        flight (so SIGTERM waits for it) and in the metrics with its status."""
        if not spec.name:
            raise InvalidArgument("Missing ModelSpec: the request must name a model")
        with self._idle:
            if self._closed:
                raise Unavailable("The server is shutting down")
            self._inflight += 1
        start, code = time.monotonic(), grpc.StatusCode.OK
        try:
            return fn()
        except ServingError as e:
            code = e.code
            raise
        except Exception:
            code = grpc.StatusCode.INTERNAL
            raise
        finally:
            with self._idle:
                self._inflight -= 1
                if self._inflight == 0:
                    self._idle.notify_all()
            if self.metrics is not None:
                self.metrics.request(spec.name, spec.signature_name or protocol.DEFAULT_SIGNATURE,
                                     api, entrypoint, code, time.monotonic() - start)

    def _call(self, api: str, entrypoint: str, spec: ModelSpec, fn):
        """`_track` around `fn(servable)` on the version the spec names."""
        def on_servable():
            servable = self.repository.acquire(spec.name, spec.version, spec.label)
            try:
                return fn(servable)
            finally:
                servable.release()
        return self._track(api, entrypoint, spec, on_servable)

    def _infer(self, api: str, entrypoint: str, spec: ModelSpec, timeout, fn):
        """`_call` for a request that runs the model: it waits for its turn in the
        admission queue first, and `fn(servable, timeout)` gets the time left."""
        def admitted(servable):
            if self.admission is None:
                return fn(servable, timeout)
            start = time.monotonic()
            with self.admission.entry(timeout):
                waited = time.monotonic() - start
                if self.metrics is not None:
                    self.metrics.admission_wait(spec.name, entrypoint, waited)
                return fn(servable, None if timeout is None else timeout - waited)
        return self._call(api, entrypoint, spec, admitted)

    # -- inference ------------------------------------------------------------
    def predict(self, spec: ModelSpec, make_inputs, output_filter=(), timeout=None, *,
                entrypoint: str) -> PredictResult:
        """Predict. `make_inputs(signature_def)` returns {alias: np.ndarray}."""
        def run(servable, timeout):
            sig = _inference.predict_signature(servable, spec.signature_name)
            name, outputs = _inference.predict(servable, spec.signature_name, make_inputs(sig),
                                               list(output_filter), timeout)
            return PredictResult(spec.name, servable.version, name, outputs, sig)
        return self._infer("predict", entrypoint, spec, timeout, run)

    def classify(self, spec: ModelSpec, examples, timeout=None, *, entrypoint: str) -> ExamplesResult:
        """Classify serialized tf.Examples (a list, or a function returning one)."""
        return self._examples("classify", protocol.CLASSIFY_METHOD, spec, examples, timeout, entrypoint)

    def regress(self, spec: ModelSpec, examples, timeout=None, *, entrypoint: str) -> ExamplesResult:
        """Regress serialized tf.Examples (a list, or a function returning one)."""
        return self._examples("regress", protocol.REGRESS_METHOD, spec, examples, timeout, entrypoint)

    def _examples(self, api, method, spec, examples, timeout, entrypoint) -> ExamplesResult:
        def run(servable, timeout):
            ex = examples() if callable(examples) else examples
            name, result = run_examples(servable, method, spec.signature_name, ex, timeout,
                                        self.check_method)
            return ExamplesResult(spec.name, servable.version, name, method, result)
        return self._infer(api, entrypoint, spec, timeout, run)

    def multi_inference(self, tasks: list[tuple[ModelSpec, str]], examples, timeout=None, *,
                        entrypoint: str) -> list[ExamplesResult]:
        """Several classify/regress tasks over one input, on one model version."""
        _check_tasks(tasks)
        first = tasks[0][0]

        def run(servable, timeout):
            ex = examples() if callable(examples) else examples
            out = []
            for spec, method in tasks:
                name, result = run_examples(servable, method, spec.signature_name, ex, timeout,
                                            self.check_method)
                out.append(ExamplesResult(spec.name, servable.version, name, method, result))
            return out
        return self._infer("multi_inference", entrypoint, first, timeout, run)

    # -- model management ---------------------------------------------------
    def metadata(self, spec: ModelSpec, fields=("signature_def",), *, entrypoint: str) -> MetadataResult:
        """GetModelMetadata: the resolved version and its SignatureDefs."""
        if not fields:
            raise InvalidArgument("GetModelMetadataRequest must specify at least one metadata_field")
        for field in fields:
            if field != "signature_def":
                raise InvalidArgument(f"Metadata field {field} is not supported; the only "
                                      f"metadata_field is signature_def")
        return self._call("metadata", entrypoint, spec, lambda servable: MetadataResult(
            spec.name, servable.version, spec.signature_name, dict(servable.signature_defs)))

    def status(self, spec: ModelSpec, *, entrypoint: str):
        """GetModelStatus: `VersionStatus` list, newest first."""
        return self._track("status", entrypoint, spec, lambda: self.repository.status(
            spec.name, spec.version, spec.label))

    def reload_config(self, server_config, cancelled=None) -> None:
        """HandleReloadConfigRequest: serve exactly the models of `server_config`
        (not applied if `cancelled()` turns true before it could be)."""
        # The same checks as a config file gets (names, base paths, platform).
        parse_model_config(text_format.MessageToString(server_config), "ReloadConfigRequest")
        self.repository.apply_config(server_config, cancelled)


def _check_tasks(tasks: list[tuple[ModelSpec, str]]) -> None:
    """TF Serving's checks of a MultiInferenceRequest's tasks."""
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
