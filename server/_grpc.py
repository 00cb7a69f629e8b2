"""The gRPC front end: `PredictionService`, `ModelService` and `grpc.health.v1`.

Servicers convert protos to core calls and back; every method is wrapped
in `rpc`, the one place an error becomes an RPC status: a `ServingError`
its own code and text, anything else INTERNAL with a generic text (the
exception and its traceback go to the log only). Message size limits are
lifted as TF Serving does (no 4 MiB cap).

>>> server = GrpcServer(core, "0.0.0.0", 8500)   # doctest: +SKIP
>>> server.start()                                # doctest: +SKIP
"""
from __future__ import annotations

import functools
import logging
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (model_management_pb2, model_service_pb2_grpc,
                                     prediction_service_pb2_grpc)

from . import _inference, _messages
from ._core import ModelSpec
from ._errors import INTERNAL_MESSAGE, ServingError
from ._tensors import proto_to_array

__all__ = ["GrpcServer", "parse_channel_arguments"]

log = logging.getLogger("server")


ENTRYPOINT = "GRPC"  # the `entrypoint` label of this front end's requests in the metrics


def rpc(method):
    """A servicer method whose errors become the RPC's status (see the module doc)."""
    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except ServingError as e:
            error = e
        except Exception:
            log.exception("gRPC %s failed", method.__name__)
            error = ServingError(INTERNAL_MESSAGE, grpc.StatusCode.INTERNAL)
        context.abort(error.code, error.message)
    return wrapper


def _spec(proto) -> ModelSpec:
    which = proto.WhichOneof("version_choice")
    return ModelSpec(proto.name,
                     proto.version.value if which == "version" else None,
                     proto.version_label if which == "version_label" else None,
                     proto.signature_name)


def _timeout(context):
    remaining = context.time_remaining()
    return remaining if remaining is not None and remaining < 1e8 else None


def _inputs(sig, request) -> dict:
    """Request tensors as arrays, checked against the signature first (TF Serving's order)."""
    _inference.check_inputs(sig, request.inputs.keys())
    out = {}
    for alias, proto in request.inputs.items():
        try:
            out[alias] = proto_to_array(proto)
        except ServingError as e:
            raise type(e)(f"tensor parsing error: {alias} ({e})") from None
    return out


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core, tensor_content: bool = False):
        self.core = core
        self.tensor_content = tensor_content

    @rpc
    def Predict(self, request, context):
        result = self.core.predict(_spec(request.model_spec), lambda sig: _inputs(sig, request),
                                   list(request.output_filter), _timeout(context), entrypoint=ENTRYPOINT)
        return _messages.predict_response(result, self.tensor_content)

    @rpc
    def Classify(self, request, context):
        result = self.core.classify(_spec(request.model_spec),
                                    lambda: _inference.serialized_examples(request.input),
                                    _timeout(context), entrypoint=ENTRYPOINT)
        return _messages.classify_response(result)

    @rpc
    def Regress(self, request, context):
        result = self.core.regress(_spec(request.model_spec),
                                   lambda: _inference.serialized_examples(request.input),
                                   _timeout(context), entrypoint=ENTRYPOINT)
        return _messages.regress_response(result)

    @rpc
    def MultiInference(self, request, context):
        tasks = [(_spec(t.model_spec), t.method_name) for t in request.tasks]
        results = self.core.multi_inference(
            tasks, lambda: _inference.serialized_examples(request.input), _timeout(context),
            entrypoint=ENTRYPOINT)
        return _messages.multi_inference_response(results)

    @rpc
    def GetModelMetadata(self, request, context):
        result = self.core.metadata(_spec(request.model_spec), list(request.metadata_field),
                                    entrypoint=ENTRYPOINT)
        return _messages.metadata_response(result)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core):
        self.core = core

    @rpc
    def GetModelStatus(self, request, context):
        return _messages.status_response(self.core.status(_spec(request.model_spec), entrypoint=ENTRYPOINT))

    @rpc
    def HandleReloadConfigRequest(self, request, context):
        self.core.reload_config(request.config, cancelled=lambda: not context.is_active())
        resp = model_management_pb2.ReloadConfigResponse()
        resp.status.SetInParent()
        return resp


def parse_channel_arguments(text: str) -> list[tuple[str, object]]:
    """`--grpc_channel_arguments`: comma-separated `key=value`, ints kept as ints.

    >>> parse_channel_arguments("grpc.max_concurrent_streams=100,grpc.primary_user_agent=x")
    [('grpc.max_concurrent_streams', 100), ('grpc.primary_user_agent', 'x')]
    """
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--grpc_channel_arguments: {item!r} is not key=value")
        try:
            out.append((key, int(value)))
        except ValueError:
            out.append((key, value))
    return out


class GrpcServer:
    """The gRPC server; `port` 0 with a `socket_path` serves on the Unix socket only."""

    def __init__(self, core, host: str, port: int, max_threads: int = 256, channel_arguments: str = "",
                 socket_path: str = "", tensor_content: bool = False):
        # No 4 MiB limit unless --grpc_channel_arguments sets one. gRPC core keeps the
        # first value of a repeated key, so the user's arguments replace ours, not follow them.
        given = dict(parse_channel_arguments(channel_arguments))
        defaults = {"grpc.max_receive_message_length": -1, "grpc.max_send_message_length": -1}
        options = list({**defaults, **given}.items())
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_threads,
                                                             thread_name_prefix="grpc"),
                                  options=options, maximum_concurrent_rpcs=None)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(core, tensor_content), self.server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core), self.server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port = None
        address = f"{'[::]' if host in ('0.0.0.0', '::') else host}:{port}"
        try:
            if port:
                self.port = self.server.add_insecure_port(address)
            if socket_path:
                self.server.add_insecure_port(f"unix:{socket_path}")
        except RuntimeError as e:
            raise OSError(f"could not bind gRPC to {address if port else socket_path}: {e} "
                          f"(is the port in use?)") from None
        if port and not self.port:
            raise OSError(f"could not bind gRPC to {address} (is the port in use?)")

    def start(self) -> None:
        self.server.start()
        for service in ("", "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float = 30.0):
        """Refuse new RPCs now, let RPCs in flight finish (up to `grace` seconds);
        returns an event set once the server has stopped."""
        self.health.enter_graceful_shutdown()
        return self.server.stop(grace)
