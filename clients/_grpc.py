"""gRPC transport: TF Serving's PredictionService and ModelService, `TensorProto`s built from numpy.

The channel's send limit is `max_request_bytes` (64 MiB by default instead of
gRPC's 4 MiB) and its receive limit is lifted, so large batches and large
outputs (5,000 x 384 floats is 7.7 MB) pass. Reconnection backoff is capped
at 2 s so that a restarted server is found again quickly.

The messages come from this project's own wire-compatible definitions
(`clients/_protos/`), not from `tensorflow-serving-api`: no client imports
TensorFlow.

>>> from clients import GrpcClient
>>> with GrpcClient("localhost:8500") as client:                      # doctest: +SKIP
...     client.predict("minilm", {"text": ["hello world"]})["embedding"].shape
(1, 384)
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import grpc
import grpc.aio
import numpy as np
from google.protobuf import json_format

from clients._async import AsyncClient
from clients._config import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_TIMEOUT, RetryPolicy
from clients._errors import RequestTooLargeError, ResponseFormatError, error_from_grpc
from clients._metadata import ModelMetadata, ModelStatus, parse_metadata, parse_status
from clients._protos import messages, stubs
from clients._sync import SyncClient
from clients._tensors import array_to_proto, proto_to_array
from protocol import GRPC_PORT

DEFAULT_ADDRESS = f"localhost:{GRPC_PORT}"

__all__ = ["GrpcClient", "AsyncGrpcClient", "GrpcCodec", "make_channel_options"]


def make_channel_options(max_request_bytes: int, extra: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    """Channel arguments: raised message-size limits, quick reconnection."""
    options = {
        "grpc.max_send_message_length": int(max_request_bytes),
        "grpc.max_receive_message_length": -1,
        "grpc.initial_reconnect_backoff_ms": 200,
        "grpc.min_reconnect_backoff_ms": 200,
        "grpc.max_reconnect_backoff_ms": 2000,
    }
    options.update(dict(extra))
    return list(options.items())


class GrpcCodec:
    """Builds request protos and reads response protos; no I/O (shared by sync and async)."""

    def __init__(self, max_request_bytes: int):
        self.max_request_bytes = max_request_bytes
        self.messages = messages()

    @staticmethod
    def _spec(spec, model: str, signature_name: str | None, version, label) -> None:
        spec.name = model
        if signature_name is not None:
            spec.signature_name = signature_name
        if version is not None:
            spec.version.value = int(version)
        elif label is not None:
            spec.version_label = label

    def _checked(self, request):
        size = request.ByteSize()
        if size > self.max_request_bytes:
            raise RequestTooLargeError(
                f"the request is {size} bytes, over max_request_bytes={self.max_request_bytes} (the "
                f"channel's send limit); send fewer rows per request (predict_batched splits them) "
                f"or make the client with a larger max_request_bytes")
        return request

    # ---------------------------------------------------------------- predict
    def predict_request(self, model, arrays: Mapping[str, np.ndarray], signature_name, version, label):
        request = self.messages.PredictRequest()
        self._spec(request.model_spec, model, signature_name, version, label)
        for name, arr in arrays.items():
            try:
                array_to_proto(arr, request.inputs[name])
            except TypeError as exc:
                raise TypeError(f"input {name!r}: {exc}") from None
        return self._checked(request)

    @staticmethod
    def predict_response(response) -> dict[str, np.ndarray]:
        try:
            return {k: proto_to_array(response.outputs[k]) for k in sorted(response.outputs)}
        except ValueError as exc:
            raise ResponseFormatError(f"cannot read the predict response: {exc}") from exc

    # ---------------------------------------------------------------- classify / regress
    def examples_request(self, verb, model, examples, context, signature_name, version, label):
        if not isinstance(examples, (list, tuple)) or not all(isinstance(e, Mapping) for e in examples):
            raise TypeError(f"examples must be a list of dicts {{feature: value}}, got {type(examples).__name__}")
        request = (self.messages.ClassificationRequest() if verb == "classify"
                   else self.messages.RegressionRequest())
        self._spec(request.model_spec, model, signature_name, version, label)
        if context:
            target = request.input.example_list_with_context
            _fill_example(target.context, context)
        else:
            target = request.input.example_list
        for example in examples:
            _fill_example(target.examples.add(), example)
        return self._checked(request)

    @staticmethod
    def examples_response(verb: str, response) -> dict[str, np.ndarray]:
        if verb == "regress":
            return {"outputs": np.asarray([r.value for r in response.result.regressions], dtype=np.float32)}
        rows = response.result.classifications
        k = max((len(r.classes) for r in rows), default=0)
        classes = np.full((len(rows), k), b"", dtype=object)
        scores = np.zeros((len(rows), k), dtype=np.float32)
        for i, row in enumerate(rows):
            for j, c in enumerate(row.classes):
                classes[i, j] = c.label.encode("utf-8")
                scores[i, j] = c.score
        return {"classes": classes, "scores": scores}

    # ---------------------------------------------------------------- sizes
    @staticmethod
    def row_nbytes(arr: np.ndarray) -> np.ndarray:
        """Serialized bytes each row (along axis 0) adds to a `TensorProto`: exact for
        numbers (`tensor_content`), +/- a few bytes for text (`string_val` entries).

        >>> GrpcCodec.row_nbytes(np.zeros((2, 384), dtype=np.float32)).tolist()
        [1536, 1536]
        """
        n = arr.shape[0]
        per_row = int(np.prod(arr.shape[1:], dtype=np.int64))
        if arr.dtype != object:
            return np.full(n, per_row * arr.dtype.itemsize, dtype=np.int64)
        flat = arr.reshape(n, -1) if n else arr.reshape(0, per_row)
        # each string: tag (1) + length varint (1-3) + the bytes
        return np.fromiter((sum(len(b) + 3 + (len(b) > 127) * 2 for b in map(_utf8, row)) for row in flat),
                           dtype=np.int64, count=n)

    # ---------------------------------------------------------------- metadata / status
    def metadata_request(self, model, version, label):
        request = self.messages.GetModelMetadataRequest()
        self._spec(request.model_spec, model, None, version, label)
        request.metadata_field.append("signature_def")
        return request

    def metadata_response(self, model, response) -> ModelMetadata:
        sig_map = self.messages.SignatureDefMap()
        if "signature_def" not in response.metadata or not response.metadata["signature_def"].Unpack(sig_map):
            raise ResponseFormatError("the metadata response has no signature_def of type SignatureDefMap")
        body = {"model_spec": json_format.MessageToDict(response.model_spec, preserving_proto_field_name=True),
                "metadata": {"signature_def": json_format.MessageToDict(sig_map, preserving_proto_field_name=True)}}
        return parse_metadata(body, model)

    def status_request(self, model, version, label):
        request = self.messages.GetModelStatusRequest()
        self._spec(request.model_spec, model, None, version, label)
        return request

    def status_response(self, model, response) -> ModelStatus:
        body = json_format.MessageToDict(response, preserving_proto_field_name=True)
        return parse_status(body, model)


def _utf8(x: Any) -> bytes:
    return x.encode("utf-8") if isinstance(x, str) else bytes(x)


def _fill_example(example, features: Mapping[str, Any]) -> None:
    """A dict {name: value or list} -> tf.train.Example features (bytes, int64 or float lists)."""
    for name, value in features.items():
        values = value.tolist() if isinstance(value, np.ndarray) else value
        if not isinstance(values, (list, tuple)):
            values = [values]
        values = [v.item() if isinstance(v, np.generic) else v for v in values]
        feature = example.features.feature[name]
        if all(isinstance(v, (str, bytes)) for v in values):
            feature.bytes_list.value.extend(v.encode("utf-8") if isinstance(v, str) else v for v in values)
        elif all(isinstance(v, (bool, int)) for v in values):
            feature.int64_list.value.extend(int(v) for v in values)
        elif all(isinstance(v, (bool, int, float)) for v in values):
            feature.float_list.value.extend(float(v) for v in values)
        else:
            raise TypeError(f"feature {name!r}: values must be all text/bytes, all ints or all numbers; "
                            f"got {[type(v).__name__ for v in values]}")


class _GrpcTransport:
    """What `GrpcClient` and `AsyncGrpcClient` share: the codec, the channel's options and the stubs."""

    _codec: GrpcCodec

    def _setup(self, target: str | None, channel_module, credentials, channel_options) -> None:
        if target is not None:  # the keyword's name before every client took `address`
            self.address = target
        self._codec = GrpcCodec(self.max_request_bytes)
        options = make_channel_options(self.max_request_bytes, channel_options)
        self._channel = (channel_module.secure_channel(self.address, credentials, options=options) if credentials
                         else channel_module.insecure_channel(self.address, options=options))
        self._predictions = stubs(self._channel, "PredictionService")
        self._models = stubs(self._channel, "ModelService")

    @property
    def target(self) -> str:
        """The server's gRPC target (`address`)."""
        return self.address

    def _method(self, verb: str):
        return self._predictions.Classify if verb == "classify" else self._predictions.Regress


class GrpcClient(_GrpcTransport, SyncClient):
    """TF Serving's gRPC API (PredictionService, ModelService) over one channel.

    >>> with GrpcClient("localhost:8500", timeout=10) as client:           # doctest: +SKIP
    ...     client.predict_batched("minilm", ["a", "b", "c"])["embedding"].shape
    (3, 384)
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, *, timeout: float | None = DEFAULT_TIMEOUT,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, retry: RetryPolicy | None = RetryPolicy(),
                 credentials: grpc.ChannelCredentials | None = None,
                 channel_options: Sequence[tuple[str, Any]] = (), target: str | None = None):
        super().__init__(address, timeout=timeout, max_request_bytes=max_request_bytes, retry=retry)
        self._setup(target, grpc, credentials, channel_options)

    def close(self) -> None:
        self._channel.close()

    @staticmethod
    def _call(method, request, timeout):
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise error_from_grpc(exc) from exc

    def _send_predict(self, model, arrays, sig, signature_name, version, label, timeout):
        request = self._codec.predict_request(model, arrays, signature_name, version, label)
        return self._codec.predict_response(self._call(self._predictions.Predict, request, timeout))

    def _send_examples(self, verb, model, examples, context, signature_name, version, label, timeout):
        request = self._codec.examples_request(verb, model, examples, context, signature_name, version, label)
        return self._codec.examples_response(verb, self._call(self._method(verb), request, timeout))

    def _fetch_metadata(self, model, version, label, timeout):
        request = self._codec.metadata_request(model, version, label)
        return self._codec.metadata_response(model, self._call(self._predictions.GetModelMetadata, request, timeout))

    def _fetch_status(self, model, version, label, timeout):
        request = self._codec.status_request(model, version, label)
        return self._codec.status_response(model, self._call(self._models.GetModelStatus, request, timeout))


class AsyncGrpcClient(_GrpcTransport, AsyncClient):
    """`GrpcClient`, awaitable, over a `grpc.aio` channel."""

    def __init__(self, address: str = DEFAULT_ADDRESS, *, timeout: float | None = DEFAULT_TIMEOUT,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, retry: RetryPolicy | None = RetryPolicy(),
                 credentials: grpc.ChannelCredentials | None = None,
                 channel_options: Sequence[tuple[str, Any]] = (), target: str | None = None):
        super().__init__(address, timeout=timeout, max_request_bytes=max_request_bytes, retry=retry)
        self._setup(target, grpc.aio, credentials, channel_options)

    async def close(self) -> None:
        await self._channel.close()

    @staticmethod
    async def _call(method, request, timeout):
        try:
            return await method(request, timeout=timeout)
        except grpc.RpcError as exc:  # grpc.aio.AioRpcError is one
            raise error_from_grpc(exc) from exc

    async def _send_predict(self, model, arrays, sig, signature_name, version, label, timeout):
        request = self._codec.predict_request(model, arrays, signature_name, version, label)
        return self._codec.predict_response(await self._call(self._predictions.Predict, request, timeout))

    async def _send_examples(self, verb, model, examples, context, signature_name, version, label, timeout):
        request = self._codec.examples_request(verb, model, examples, context, signature_name, version, label)
        return self._codec.examples_response(verb, await self._call(self._method(verb), request, timeout))

    async def _fetch_metadata(self, model, version, label, timeout):
        request = self._codec.metadata_request(model, version, label)
        return self._codec.metadata_response(
            model, await self._call(self._predictions.GetModelMetadata, request, timeout))

    async def _fetch_status(self, model, version, label, timeout):
        request = self._codec.status_request(model, version, label)
        return self._codec.status_response(model, await self._call(self._models.GetModelStatus, request, timeout))
