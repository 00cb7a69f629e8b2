"""The text-proto configuration files `tensorflow_model_server` reads.

* `--model_config_file`: a `ModelServerConfig` (`model_config_list { config { ... } }`),
  parsed with `tensorflow_serving.config.model_server_config_pb2`.
* `--batching_parameters_file`: a `BatchingParameters` text proto
  (`max_batch_size { value: 32 }` ...).
* `--monitoring_config_file`: a `MonitoringConfig` text proto
  (`prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }`).

`tensorflow-serving-api` does not ship the last two messages, so they are
declared here with the same field names (all that text format looks at).

>>> cfg = parse_model_config('model_config_list { config { name: "m" base_path: "/m" } }')
>>> cfg.model_config_list.config[0].name
'm'
>>> parse_batching_parameters("max_batch_size { value: 8 }").max_batch_size
8
"""
from __future__ import annotations

import dataclasses

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf import wrappers_pb2  # noqa: F401  (registers the wrapper types in the pool)
from tensorflow_serving.config import model_server_config_pb2

from ._errors import InvalidArgument

__all__ = [
    "parse_model_config", "single_model_config", "read_model_config",
    "BatchingParameters", "parse_batching_parameters", "read_batching_parameters",
    "MonitoringConfig", "parse_monitoring_config", "read_monitoring_config",
    "DEFAULT_PROMETHEUS_PATH",
]

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


def _parse_text(text: str, message, source: str):
    """Parse a text proto into `message`, failing as tensorflow_model_server does:
    protobuf's "Error parsing text-format <type>: line:column: why", then
    "Invalid protobuf file" (scripts and log alerts match on both)."""
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        why = str(e).split(" : ", 1)[-1]
        where = f"{e.GetLine()}:{e.GetColumn()}: " if e.GetLine() is not None else ""
        raise InvalidArgument(f"Error parsing text-format {message.DESCRIPTOR.full_name}: {where}{why}\n"
                              f"Invalid protobuf file: '{source}'") from None
    return message


def parse_model_config(text: str, source: str = "<text>") -> model_server_config_pb2.ModelServerConfig:
    """Parse a `ModelServerConfig` text proto; only `model_config_list` is supported."""
    cfg = _parse_text(text, model_server_config_pb2.ModelServerConfig(), source)
    if cfg.WhichOneof("config") == "custom_model_config":
        raise InvalidArgument(f"{source}: custom_model_config is not supported; use model_config_list")
    names = set()
    for model in cfg.model_config_list.config:
        if not model.name or not model.base_path:
            raise InvalidArgument(f"{source}: every config needs a name and a base_path, got {model}")
        if model.name in names:
            raise InvalidArgument(f"{source}: model name {model.name!r} appears twice")
        names.add(model.name)
        if model.model_platform not in ("", "tensorflow"):
            raise InvalidArgument(f"{source}: model {model.name!r} has model_platform "
                                  f"{model.model_platform!r}; only 'tensorflow' is served")
    return cfg


def single_model_config(name: str, base_path: str) -> model_server_config_pb2.ModelServerConfig:
    """What `--model_name`/`--model_base_path` mean: one model, latest version."""
    cfg = model_server_config_pb2.ModelServerConfig()
    m = cfg.model_config_list.config.add()
    m.name, m.base_path, m.model_platform = name, base_path, "tensorflow"
    return cfg


def read_model_config(path: str) -> model_server_config_pb2.ModelServerConfig:
    """`--model_config_file`: read and parse (OSError when it cannot be read)."""
    with open(path, encoding="utf-8") as f:
        return parse_model_config(f.read(), path)


def _build_messages():
    fdp = descriptor_pb2.FileDescriptorProto(
        name="server/_config_messages.proto", package="tensorflow.serving",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    L = descriptor_pb2.FieldDescriptorProto

    def add(msg, name, number, ftype, type_name=None, repeated=False):
        f = msg.field.add(name=name, number=number, type=ftype,
                          label=L.LABEL_REPEATED if repeated else L.LABEL_OPTIONAL)
        if type_name:
            f.type_name = type_name

    bp = fdp.message_type.add(name="BatchingParameters")
    i64, s, b = ".google.protobuf.Int64Value", ".google.protobuf.StringValue", ".google.protobuf.BoolValue"
    add(bp, "max_batch_size", 1, L.TYPE_MESSAGE, i64)
    add(bp, "batch_timeout_micros", 2, L.TYPE_MESSAGE, i64)
    add(bp, "max_enqueued_batches", 3, L.TYPE_MESSAGE, i64)
    add(bp, "num_batch_threads", 4, L.TYPE_MESSAGE, i64)
    add(bp, "thread_pool_name", 5, L.TYPE_MESSAGE, s)
    add(bp, "allowed_batch_sizes", 6, L.TYPE_INT64, repeated=True)
    add(bp, "pad_variable_length_inputs", 7, L.TYPE_BOOL)
    add(bp, "enable_large_batch_splitting", 8, L.TYPE_MESSAGE, b)
    add(bp, "max_execution_batch_size", 9, L.TYPE_MESSAGE, i64)
    pc = fdp.message_type.add(name="PrometheusConfig")
    add(pc, "enable", 1, L.TYPE_BOOL)
    add(pc, "path", 2, L.TYPE_STRING)
    sc = fdp.message_type.add(name="SamplingConfig")
    add(sc, "sampling_rate", 1, L.TYPE_DOUBLE)
    mc = fdp.message_type.add(name="MonitoringConfig")
    add(mc, "prometheus_config", 1, L.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig")
    add(mc, "sampling_config", 2, L.TYPE_MESSAGE, ".tensorflow.serving.SamplingConfig")
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(descriptor_pb2.FileDescriptorProto.FromString(
        wrappers_pb2.DESCRIPTOR.serialized_pb).SerializeToString())
    pool.Add(fdp)
    get = lambda n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{n}"))
    return get("BatchingParameters"), get("MonitoringConfig")


_BatchingParametersProto, _MonitoringConfigProto = _build_messages()


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's `BatchingParameters`, with BasicBatchScheduler's defaults."""
    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = 0  # 0: one per CPU (port::MaxParallelism)
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    thread_pool_name: str = "batch_threads"


def parse_batching_parameters(text: str, source: str = "<text>") -> BatchingParameters:
    """Parse and validate a `BatchingParameters` text proto."""
    msg = _parse_text(text, _BatchingParametersProto(), source)
    if msg.HasField("enable_large_batch_splitting") and msg.enable_large_batch_splitting.value:
        raise InvalidArgument(f"{source}: enable_large_batch_splitting is not implemented; "
                              f"remove it (requests larger than max_batch_size are refused)")
    d = BatchingParameters()
    values = {}
    for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                 "num_batch_threads", "thread_pool_name"):
        if msg.HasField(name):
            values[name] = getattr(msg, name).value
    params = dataclasses.replace(d, **values, allowed_batch_sizes=tuple(msg.allowed_batch_sizes),
                                 pad_variable_length_inputs=msg.pad_variable_length_inputs)
    if params.max_batch_size <= 0:
        raise InvalidArgument(f"{source}: max_batch_size must be positive, got {params.max_batch_size}")
    if params.num_batch_threads < 0 or params.max_enqueued_batches <= 0 or params.batch_timeout_micros < 0:
        raise InvalidArgument(f"{source}: num_batch_threads, max_enqueued_batches and "
                              f"batch_timeout_micros must not be negative (max_enqueued_batches > 0)")
    sizes = params.allowed_batch_sizes
    if sizes:
        if any(b <= a for a, b in zip(sizes, sizes[1:])) or sizes[0] <= 0:
            raise InvalidArgument(f"{source}: allowed_batch_sizes entries must be monotonically "
                                  f"increasing, got {list(sizes)}")
        if sizes[-1] != params.max_batch_size:
            raise InvalidArgument(f"{source}: final entry in allowed_batch_sizes must equal "
                                  f"max_batch_size when enable_large_batch_splitting is false "
                                  f"(got {sizes[-1]} and {params.max_batch_size})")
    return params


def read_batching_parameters(path: str) -> BatchingParameters:
    with open(path, encoding="utf-8") as f:
        return parse_batching_parameters(f.read(), path)


@dataclasses.dataclass(frozen=True)
class MonitoringConfig:
    prometheus_enable: bool = False
    prometheus_path: str = DEFAULT_PROMETHEUS_PATH


def parse_monitoring_config(text: str, source: str = "<text>") -> MonitoringConfig:
    """Parse a `MonitoringConfig` text proto (an empty path means TF Serving's default)."""
    msg = _parse_text(text, _MonitoringConfigProto(), source)
    path = msg.prometheus_config.path or DEFAULT_PROMETHEUS_PATH
    if not path.startswith("/"):
        raise InvalidArgument(f"{source}: prometheus_config.path must start with '/', got {path!r}")
    return MonitoringConfig(msg.prometheus_config.enable, path)


def read_monitoring_config(path: str) -> MonitoringConfig:
    with open(path, encoding="utf-8") as f:
        return parse_monitoring_config(f.read(), path)
