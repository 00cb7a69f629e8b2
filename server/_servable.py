"""One loaded SavedModel version: its session, signatures, runs and warmup.

Like TF Serving's SavedModelBundle, the model is loaded with the TF1 loader
into its own graph and session (`_saved_model.load_saved_model`), and
signatures are run by their SignatureDef tensor names (`Session.run` releases
the GIL, so requests run in parallel).

>>> s = Servable.load("m", 1, "/models/m/1")           # doctest: +SKIP
>>> s.run({"x:0": np.array([1.0], np.float32)}, ["y:0"])  # doctest: +SKIP
[array([2.5], dtype=float32)]
"""
from __future__ import annotations

import os
import struct
import threading

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

import protocol

from . import _inference
from ._errors import DeadlineExceeded, InvalidArgument, ServingError, Unavailable, from_tf_error
from ._saved_model import SessionOptions, load_saved_model
from ._tensors import proto_to_array

__all__ = ["Servable", "read_warmup_records"]


class Servable:
    """A loaded version. Use `acquire()`/`release()` around every use, so
    `unload()` waits for requests in flight before closing the session."""

    def __init__(self, name: str, version: int, path: str, session, signature_defs: dict):
        self.name, self.version, self.path = name, version, path
        self.session = session
        self.signature_defs = signature_defs
        self.batcher = None
        self._callables: dict = {}
        self._lock = threading.Lock()
        self._refs = 0
        self._idle = threading.Condition(self._lock)
        self._closing = False

    @classmethod
    def load(cls, name: str, version: int, path: str, tags=(protocol.SERVE_TAG,),
             options: SessionOptions = SessionOptions()) -> "Servable":
        """Load `path` (a version directory) in a fresh graph and session."""
        loaded = load_saved_model(path, tags, options)
        return cls(name, version, path, loaded.session, loaded.signature_defs)

    # -- reference counting -------------------------------------------------
    def acquire(self) -> bool:
        with self._lock:
            if self._closing:
                return False
            self._refs += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._refs -= 1
            if self._refs == 0:
                self._idle.notify_all()

    def unload(self) -> None:
        """Wait until no request uses this version, then free it."""
        with self._lock:
            self._closing = True
            while self._refs:
                self._idle.wait()
        if self.batcher is not None:
            self.batcher.stop()
        self.session.close()

    # -- running ------------------------------------------------------------
    def run(self, feeds: dict, fetches: list, timeout: float | None = None) -> list:
        """Run the graph: `feeds` maps tensor names to arrays; returns fetched arrays."""
        if self.batcher is not None:
            return self.batcher.run(feeds, fetches, timeout)
        return self.run_direct(feeds, fetches, timeout)

    def run_direct(self, feeds: dict, fetches: list, timeout: float | None = None) -> list:
        names = tuple(sorted(feeds))
        key = (names, tuple(fetches))
        fn = self._callables.get(key)
        if fn is None:
            with self._lock:
                fn = self._callables.get(key)
                if fn is None:
                    # A callable skips feed_dict parsing on every call (faster than Session.run).
                    fn = self.session.make_callable(list(fetches), list(names), accept_options=True)
                    self._callables[key] = fn
        options = None
        if timeout is not None:
            if timeout <= 0:
                raise DeadlineExceeded("Deadline exceeded before the request was run")
            options = tf.compat.v1.RunOptions(timeout_in_ms=max(1, int(timeout * 1000)))
        try:
            values = fn(*[feeds[n] for n in names], options=options)
        except tf.errors.DeadlineExceededError:
            raise DeadlineExceeded("Deadline exceeded while running the model "
                                   "(see --rest_api_timeout_in_ms or the gRPC deadline)") from None
        except tf.errors.CancelledError as e:
            if self._closing:
                raise Unavailable(f"Servable {self.name} version {self.version} was unloaded") from None
            raise from_tf_error(e) from None
        except (tf.errors.OpError, ValueError, TypeError) as e:
            raise from_tf_error(e) from None
        return list(values)

    # -- warmup -------------------------------------------------------------
    def warmup(self, iterations: int = 1, check_method: bool = False) -> int:
        """Replay `assets.extra/tf_serving_warmup_requests` (PredictionLogs);
        returns the number of records. An error fails the load, as in TF Serving."""
        path = os.path.join(self.path, protocol.WARMUP_DIR, protocol.WARMUP_FILE)
        if not os.path.exists(path):
            return 0
        records = read_warmup_records(path)
        for _ in range(max(1, iterations)):
            for i, record in enumerate(records):
                try:
                    self._replay(record, check_method)
                except ServingError as e:
                    raise ServingError(f"Failed to warm up model {self.name} version "
                                       f"{self.version} with record {i} of {path}: {e}", e.code) from None
        return len(records)

    def _replay(self, record: bytes, check_method: bool) -> None:
        log = prediction_log_pb2.PredictionLog.FromString(record)
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
            req = log.predict_log.request
            inputs = {k: proto_to_array(v) for k, v in req.inputs.items()}
            _inference.predict(self, req.model_spec.signature_name, inputs, list(req.output_filter))
        elif kind == "classify_log":
            req = log.classify_log.request
            _inference.classify(self, req.model_spec.signature_name,
                                _inference.serialized_examples(req.input), check_method=check_method)
        elif kind == "regress_log":
            req = log.regress_log.request
            _inference.regress(self, req.model_spec.signature_name,
                               _inference.serialized_examples(req.input), check_method=check_method)
        elif kind == "multi_inference_log":
            req = log.multi_inference_log.request
            examples = _inference.serialized_examples(req.input)
            for task in req.tasks:
                fn = _inference.classify if task.method_name == protocol.CLASSIFY_METHOD else _inference.regress
                fn(self, task.model_spec.signature_name, examples, check_method=check_method)
        else:
            raise InvalidArgument(f"Unsupported log_type for warmup: {kind}")


def read_warmup_records(path: str) -> list[bytes]:
    """The records of a TFRecord file (at most `protocol.WARMUP_MAX_RECORDS`)."""
    records = []
    with open(path, "rb") as f:
        while True:
            header = f.read(12)  # uint64 length + uint32 masked crc of the length
            if not header:
                break
            if len(header) < 12:
                raise InvalidArgument(f"Truncated record header in warmup file {path}")
            (length,) = struct.unpack("<Q", header[:8])
            data = f.read(length)
            if len(data) < length or len(f.read(4)) < 4:
                raise InvalidArgument(f"Truncated record in warmup file {path}")
            records.append(data)
            if len(records) > protocol.WARMUP_MAX_RECORDS:
                raise InvalidArgument(f"Number of warmup records exceeds the maximum "
                                      f"({protocol.WARMUP_MAX_RECORDS}) at {path}")
    return records

