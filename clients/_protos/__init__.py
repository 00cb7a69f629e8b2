"""TF Serving's gRPC messages and stubs, without TensorFlow.

The messages are made at run time from a `FileDescriptorSet` compiled from
this folder's `.proto` files (`_compile.py`; at build time for an installed
package), in a descriptor pool of their own: their full names are TF
Serving's (`tensorflow.serving.PredictRequest`, `tensorflow.TensorProto`), so
a process that also imports TensorFlow's generated classes (the server does)
has no clash, and the bytes on the wire are the official ones.

>>> from clients._protos import messages
>>> m = messages()
>>> request = m.PredictRequest(model_spec=m.ModelSpec(name="minilm", signature_name="text"))
>>> m.PredictRequest.FromString(request.SerializeToString()).model_spec.name
'minilm'
"""
from __future__ import annotations

import functools
import types
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from clients._protos._compile import DESCRIPTOR_SET, HERE

__all__ = ["messages", "stubs", "SERVICE_PACKAGE"]

SERVICE_PACKAGE = "tensorflow.serving"
_PACKAGES = ("tensorflow", "tensorflow.error", SERVICE_PACKAGE)


def _descriptor_set() -> bytes:
    built = HERE / DESCRIPTOR_SET
    if not built.exists():  # a source checkout that was never built: compile once, beside the sources
        built = _compile_in_subprocess(built)
    return built.read_bytes()


def _compile_in_subprocess(target: Path) -> Path:
    """protoc in a child process: grpc_tools' compiler crashes a process that has loaded
    TensorFlow (both bring their own protobuf); written to a temporary name, then moved
    into place, so concurrent first uses do not see half a file."""
    import os
    import subprocess
    import sys
    import tempfile

    folder = target.parent if os.access(target.parent, os.W_OK) else Path(tempfile.mkdtemp())
    fd, tmp = tempfile.mkstemp(prefix=".tfserving-", suffix=".binpb", dir=folder)
    os.close(fd)
    os.chmod(tmp, 0o644)
    run = subprocess.run([sys.executable, str(HERE / "_compile.py"), tmp], capture_output=True, text=True)
    if run.returncode != 0:
        os.unlink(tmp)
        raise ImportError(f"cannot compile the TF Serving protos in {HERE}: {run.stderr.strip()[-2000:]}")
    os.replace(tmp, folder / target.name)
    return folder / target.name


@functools.lru_cache(maxsize=None)
def _files() -> tuple[descriptor_pool.DescriptorPool, list[descriptor_pb2.FileDescriptorProto]]:
    files = list(descriptor_pb2.FileDescriptorSet.FromString(_descriptor_set()).file)
    pool = descriptor_pool.DescriptorPool()
    for file in files:
        pool.Add(file)
    return pool, files


@functools.lru_cache(maxsize=None)
def messages() -> types.SimpleNamespace:
    """Every message class of the three packages by its short name (`PredictRequest`, `TensorProto`)."""
    pool, files = _files()
    return types.SimpleNamespace(**{
        message.name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{file.package}.{message.name}"))
        for file in files if file.package in _PACKAGES for message in file.message_type})


def stubs(channel, service: str) -> types.SimpleNamespace:
    """A stub of `tensorflow.serving.<service>` on a `grpc` or `grpc.aio` channel: one
    unary-unary callable per method, at TF Serving's method paths."""
    descriptor = _files()[0].FindServiceByName(f"{SERVICE_PACKAGE}.{service}")
    methods = {}
    for method in descriptor.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        methods[method.name] = channel.unary_unary(
            f"/{descriptor.full_name}/{method.name}",
            request_serializer=request.SerializeToString, response_deserializer=response.FromString)
    return types.SimpleNamespace(**methods)
