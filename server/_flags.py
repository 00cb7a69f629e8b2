"""`tensorflow_model_server`'s command line, in its `--flag=value` form and with its defaults.

Flags are parsed the way TensorFlow's `Flags::Parse` does it: `--name=value`,
and for booleans also `--name` / `--name=true|false|1|0`. A flag of
`tensorflow_model_server` this server does not implement is refused when it
is given a value other than its default (so it is never silently ignored); an
unknown flag is refused too.

>>> opts = parse_flags(["--port=9000", "--model_name=m", "--model_base_path=/models/m"])
>>> opts.port, opts.rest_api_port, opts.model_name, opts.enable_model_warmup
(9000, 0, 'm', True)
"""
from __future__ import annotations

import dataclasses
import os

import protocol

__all__ = ["Options", "FlagError", "parse_flags", "IMPLEMENTED", "NOT_IMPLEMENTED", "OURS", "usage"]

_CPUS = os.cpu_count() or 1


class FlagError(ValueError):
    """A command line that `tensorflow_model_server` (or this server) refuses."""


@dataclasses.dataclass
class Options:
    """Parsed flags. Field names are the flag names."""
    port: int = protocol.GRPC_PORT
    grpc_socket_path: str = ""
    rest_api_port: int = 0
    rest_api_num_threads: int = 4 * _CPUS
    rest_api_timeout_in_ms: int = 30000
    rest_api_max_body_bytes: int = 256 * 1024 * 1024  # ours (see OURS)
    enable_batching: bool = False
    allow_version_labels_for_unavailable_models: bool = False
    batching_parameters_file: str = ""
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: int = 0
    model_name: str = "default"
    model_base_path: str = ""
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60 * 1000 * 1000
    file_system_poll_wait_seconds: int = 1
    saved_model_tags: str = protocol.SERVE_TAG
    grpc_channel_arguments: str = ""
    grpc_max_threads: int = 4 * _CPUS
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 1
    monitoring_config_file: str = ""
    enable_signature_method_name_check: bool = False
    tensorflow_session_parallelism: int = 0
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0
    enable_serialization_as_tensor_content: bool = False
    # grpc.health.v1 is always served (Kubernetes' gRPC probes need it); the flag is accepted either way.
    enable_grpc_healthcheck_service: bool = False
    version: bool = False
    mixed_precision: str = ""  # "bfloat16": grappler's oneDNN bf16 auto mixed precision rewrite
    # Ours, not tensorflow_model_server's: the address both front ends bind,
    # and whether TensorFlow's own log lines and warnings are shown (off: only
    # the server's lines, as tensorflow_model_server prints them).
    host: str = "0.0.0.0"
    log_tensorflow: bool = False

    def session_options(self):
        """The `SessionOptions` the parallelism flags ask for (the per-pool flags win,
        as in TF Serving)."""
        from ._saved_model import SessionOptions
        return SessionOptions(
            intra_op_threads=self.tensorflow_intra_op_parallelism or self.tensorflow_session_parallelism,
            inter_op_threads=self.tensorflow_inter_op_parallelism or self.tensorflow_session_parallelism,
            mixed_precision=self.mixed_precision)


# Flags this server implements (all fields of Options).
IMPLEMENTED = tuple(f.name for f in dataclasses.fields(Options))

# tensorflow_model_server flags we do not implement, with their defaults and
# why. Given their default value they are accepted (no behaviour changes);
# any other value is refused.
NOT_IMPLEMENTED: dict[str, tuple[object, str]] = {
    "ssl_config_file": ("", "TLS is not implemented; terminate TLS in front of the server"),
    "platform_config_file": ("", "only the 'tensorflow' platform (SavedModel) is served"),
    "per_process_gpu_memory_fraction": (0.0, "the embedded server runs on CPU"),
    "tensorflow_session_config_file": ("", "session ConfigProto files are not read; use the parallelism flags"),
    "flush_filesystem_caches": (True, "there are no file system caches to flush"),
    "prefer_tflite_model": (False, "TFLite models are not served"),
    "num_tflite_pools": (1, "TFLite models are not served"),
    "num_tflite_interpreters_per_pool": (1, "TFLite models are not served"),
    "xla_cpu_compilation_enabled": (False, "XLA compilation is not offered"),
    "enable_profiler": (True, "the TensorFlow profiler service is not exposed"),
    "remove_unused_fields_from_bundle_metagraph": (True, "the whole MetaGraphDef is always kept"),
    "skip_initialize_tpu": (False, "there is no TPU"),
    "thread_pool_factory_config_file": ("", "custom thread pools are not offered"),
    "num_load_threads": (0, "versions load one at a time"),
    "num_unload_threads": (0, "versions unload one at a time"),
    "rest_api_enable_cors_support": (False, "CORS headers are not sent; put a proxy in front"),
    "enable_per_model_batching_parameters": (False, "one --batching_parameters_file applies to all models"),
    "use_alts_credentials": (False, "ALTS (Google Cloud) credentials are not offered"),
    "xla_gpu_compilation_enabled": (False, "the embedded server runs on CPU"),
}

# Flags of ours, not tensorflow_model_server's, with what they do.
OURS = {
    "host": "the address both front ends bind",
    "rest_api_max_body_bytes": "the largest REST request body, counted after gzip inflation; "
                               "a larger one is answered 413",
    "log_tensorflow": "show TensorFlow's own log lines and warnings (by default only the "
                      "server's lines are printed)",
}

_BOOL_WORDS = {"true": True, "1": True, "false": False, "0": False}


def _convert(name: str, default: object, raw: str | None) -> object:
    if isinstance(default, bool):
        if raw is None:
            return True
        if raw.lower() not in _BOOL_WORDS:
            raise FlagError(f"--{name}={raw}: a boolean flag takes true/false/1/0, e.g. --{name}=true")
        return _BOOL_WORDS[raw.lower()]
    if raw is None:
        raise FlagError(f"--{name} needs a value in the form --{name}=VALUE")
    try:
        return type(default)(raw)
    except ValueError:
        raise FlagError(f"--{name}={raw}: expected a {type(default).__name__}, "
                        f"e.g. --{name}={default!r}") from None


def parse_flags(argv: list[str]) -> Options:
    """Parse `argv` (without the program name) into `Options`."""
    opts = Options()
    defaults = {f.name: getattr(opts, f.name) for f in dataclasses.fields(Options)}
    for arg in argv:
        if not arg.startswith("-") or arg in ("-", "--"):
            raise FlagError(f"unexpected argument {arg!r}: tensorflow_model_server takes only "
                            f"--flag=value arguments")
        body = arg.lstrip("-")
        name, eq, raw = body.partition("=")
        value = raw if eq else None
        if name in defaults:
            setattr(opts, name, _convert(name, defaults[name], value))
        elif name in NOT_IMPLEMENTED:
            default, why = NOT_IMPLEMENTED[name]
            given = _convert(name, default, value)
            if given != default:
                raise FlagError(f"--{name}={raw if eq else 'true'} is a tensorflow_model_server flag "
                                f"this server does not implement ({why}); drop it, or use the "
                                f"tensorflow/serving image")
        else:
            raise FlagError(f"unknown command line flag '{name}' (see --help for the flags "
                            f"tensorflow_model_server and this server accept)")
    return opts


def usage() -> str:
    """The --help text."""
    lines = ["usage: python -m server --flag=value ...", "",
             "Flags (tensorflow_model_server's, plus ours, explained):"]
    for f in dataclasses.fields(Options):
        ours = f"  (ours: {OURS[f.name]})" if f.name in OURS else ""
        lines.append(f"  --{f.name}={getattr(Options(), f.name)!r}{ours}")
    lines += ["", "Not implemented (refused unless given their default):"]
    for name, (default, why) in NOT_IMPLEMENTED.items():
        lines.append(f"  --{name}: {why}")
    return "\n".join(lines)
