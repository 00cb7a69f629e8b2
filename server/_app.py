"""The server object: wires flags, configs, repository, core and front ends;
starts them in TF Serving's order (models loaded first, then the ports) and
stops gracefully on SIGTERM (stop accepting, drain requests in flight, exit 0).

>>> app = App(parse_flags(["--model_name=m", "--model_base_path=/models/m", "--rest_api_port=8501"]))  # doctest: +SKIP
>>> app.start(); app.wait(); app.stop()                                                   # doctest: +SKIP
"""
from __future__ import annotations

import logging
import signal
import sys
import threading

from . import _config
from ._errors import ServingError
from ._flags import Options

__all__ = ["App", "StartupError"]

log = logging.getLogger("server")


class StartupError(RuntimeError):
    """The flags or configs cannot be served."""


def _check(opts: Options) -> None:
    if not opts.model_config_file and not opts.model_base_path:
        raise StartupError("Both --model_config_file and --model_base_path are empty: give "
                           "--model_name=NAME --model_base_path=/abs/path/NAME, or --model_config_file=FILE")
    if not opts.port and not opts.grpc_socket_path:
        raise StartupError("At least one of --port or --grpc_socket_path must be set")
    if opts.rest_api_port and opts.rest_api_port == opts.port:
        raise StartupError(f"--rest_api_port cannot be same as --port ({opts.port}); use a different "
                           f"port for the HTTP/REST API")
    if opts.batching_parameters_file and not opts.enable_batching:
        raise StartupError("--batching_parameters_file is set but --enable_batching is not; add "
                           "--enable_batching=true to batch")


class App:
    """A running model server built from `Options`."""

    def __init__(self, opts: Options):
        _check(opts)
        self.opts = opts
        self._stop = threading.Event()
        self._config_text = None
        self.rest = self.grpc = None
        try:
            if opts.model_config_file:
                with open(opts.model_config_file, encoding="utf-8") as f:
                    self._config_text = f.read()
                self.model_config = _config.parse_model_config(self._config_text, opts.model_config_file)
            else:
                self.model_config = _config.single_model_config(opts.model_name, opts.model_base_path)
            self.batching = (_config.read_batching_parameters(opts.batching_parameters_file)
                             if opts.batching_parameters_file else _config.BatchingParameters())
            self.monitoring = (_config.read_monitoring_config(opts.monitoring_config_file)
                               if opts.monitoring_config_file else _config.MonitoringConfig())
        except (OSError, ServingError) as e:
            raise StartupError(str(e)) from None
        from ._core import Core  # imports TensorFlow: only once the flags are known good
        from ._metrics import Metrics
        from ._repository import Repository
        self.metrics = Metrics() if self.monitoring.prometheus_enable else None
        self.repository = Repository(
            self._load, max_num_load_retries=opts.max_num_load_retries,
            load_retry_interval=opts.load_retry_interval_micros / 1e6,
            allow_labels_for_unavailable=opts.allow_version_labels_for_unavailable_models,
            on_state=self.metrics.version if self.metrics else None)
        self.core = Core(self.repository, self.metrics, opts.enable_signature_method_name_check)

    # -- loading ------------------------------------------------------------
    def _load(self, name: str, version: int, path: str):
        from ._servable import Servable
        opts = self.opts
        servable = Servable.load(name, version, path,
                                 tags=[t for t in opts.saved_model_tags.split(",") if t],
                                 options=opts.session_options())
        try:
            if opts.enable_batching:
                from ._batching import Batcher
                observe = (lambda size, depth: self.metrics.batch(name, size, depth)) if self.metrics else None
                servable.batcher = Batcher(self.batching, servable.run_direct, observe)
            if opts.enable_model_warmup:
                n = servable.warmup(opts.num_request_iterations_for_warmup,
                                    opts.enable_signature_method_name_check)
                if n:
                    log.info("Finished reading warmup data for model at %s. Number of warmup "
                             "records read: %d.", path, n)
        except BaseException:
            servable.unload()
            raise
        return servable

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        """Load the configured models (waiting for them), then open the ports."""
        from ._grpc import GrpcServer
        from ._rest import RestServer
        opts = self.opts
        try:
            self.repository.apply_config(self.model_config)
        except ServingError as e:
            self.repository.stop()
            raise StartupError(f"Loading the models failed: {e}") from None
        try:
            self.grpc = GrpcServer(self.core, opts.host, opts.port, opts.grpc_max_threads,
                                   opts.grpc_channel_arguments, opts.grpc_socket_path,
                                   opts.enable_serialization_as_tensor_content)
            if opts.rest_api_port:
                self.rest = RestServer(self.core, opts.host, opts.rest_api_port,
                                       opts.rest_api_timeout_in_ms, opts.rest_api_num_threads,
                                       self.metrics, self.monitoring.prometheus_path)
        except (OSError, ValueError) as e:
            self.repository.stop()
            raise StartupError(str(e)) from None
        self.grpc.start()
        if opts.port:
            print(f"Running gRPC ModelServer at {opts.host}:{opts.port} ...", flush=True)
        if opts.grpc_socket_path:
            print(f"Running gRPC ModelServer at UNIX socket {opts.grpc_socket_path} ...", flush=True)
        if self.rest is not None:
            self.rest.start()
            print(f"Exporting HTTP/REST API at:{opts.host}:{opts.rest_api_port} ...", flush=True)
            if self.metrics is not None:
                print(f"Prometheus metrics at {self.monitoring.prometheus_path} on the REST port",
                      flush=True)
        for name, versions in sorted(self.repository.available().items()):
            print(f"Model {name}: versions {versions or 'none'} AVAILABLE", flush=True)
        self.repository.start_polling(opts.file_system_poll_wait_seconds)
        if opts.model_config_file and opts.model_config_file_poll_wait_seconds > 0:
            threading.Thread(target=self._poll_config, name="config-poll", daemon=True).start()

    def _poll_config(self) -> None:
        path = self.opts.model_config_file
        while not self._stop.wait(self.opts.model_config_file_poll_wait_seconds):
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                if text == self._config_text:
                    continue
                self._config_text = text
                self.repository.apply_config(_config.parse_model_config(text, path))
                log.info("Reloaded model config from %s", path)
            except (OSError, ServingError) as e:
                log.error("Reloading model config from %s failed: %s", path, e)

    def request_stop(self) -> None:
        """Ask `wait()` to return (what SIGTERM does)."""
        self._stop.set()

    def wait(self) -> None:
        """Block until `request_stop()`."""
        while not self._stop.wait(3600):
            pass

    def stop(self, grace: float = 30.0) -> None:
        """Stop accepting, finish requests in flight, unload everything."""
        self._stop.set()
        if self.rest is not None:
            self.rest.stop(grace)
        if self.grpc is not None:
            self.grpc.stop(grace)
        self.core.drain(grace)
        self.repository.stop()


def main(argv: list[str]) -> int:
    """`python -m server`: returns the process exit code."""
    from ._flags import FlagError, parse_flags, usage
    if any(a in ("--help", "-h", "-help") for a in argv):
        print(usage())
        return 0
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s server] %(message)s")
    try:
        opts = parse_flags(argv)
    except FlagError as e:
        print(f"error: {e}\n\n{usage()}", file=sys.stderr)
        return 2
    if opts.version:
        import tensorflow as tf
        print(f"TensorFlow ModelServer: {tf.__version__}-embedded (python -m server)\n"
              f"TensorFlow Library: {tf.__version__}")
        return 0
    stop = threading.Event()
    # Installed before loading, so a SIGTERM during start-up still exits cleanly.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        app = App(opts)
        app.start()
    except StartupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    while not stop.wait(1.0):
        pass
    print("Shutting down: draining requests in flight", flush=True)
    app.stop()
    return 0
