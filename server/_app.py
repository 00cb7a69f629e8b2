"""The server object: wires flags, configs, repository, core and front ends;
starts them in TF Serving's order (models loaded first, then the ports) and
stops gracefully on SIGTERM (stop accepting, drain requests in flight, exit 0).

>>> app = App(parse_flags(["--model_name=m", "--model_base_path=/models/m", "--rest_api_port=8501"]))  # doctest: +SKIP
>>> app.start(); app.wait(); app.stop()                                                   # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from . import _config, _logs
from ._errors import ServingError
from ._flags import Options

__all__ = ["App", "StartupError", "rpc_threads"]

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


def rpc_threads(admitted: int) -> int:
    """Threads of the gRPC server: one for every RPC in flight, so that RPCs wait
    for the model in the admission queue both front ends share, in arrival
    order, not in a line of gRPC's own for a free thread (REST has a thread per
    connection). Threads start only when RPCs need them.

    >>> rpc_threads(16)
    256
    """
    return max(256, 4 * admitted)


class App:
    """A running model server built from `Options`."""

    def __init__(self, opts: Options):
        _check(opts)
        self.opts = opts
        self._stop = threading.Event()
        self.rest = self.grpc = None
        try:
            if opts.model_config_file:
                self.model_config = _config.read_model_config(opts.model_config_file)
            else:
                self.model_config = _config.single_model_config(opts.model_name, opts.model_base_path)
            self.batching = (_config.read_batching_parameters(opts.batching_parameters_file)
                             if opts.batching_parameters_file else _config.BatchingParameters())
            self.monitoring = (_config.read_monitoring_config(opts.monitoring_config_file)
                               if opts.monitoring_config_file else _config.MonitoringConfig())
        except (OSError, ServingError) as e:
            raise StartupError(str(e)) from None
        from ._admission import Admission
        from ._core import Core  # imports TensorFlow: only once the flags are known good
        from ._metrics import Metrics
        from ._repository import Repository
        self.metrics = Metrics() if self.monitoring.prometheus_enable else None
        self.repository = Repository(
            self._load, max_num_load_retries=opts.max_num_load_retries,
            load_retry_interval=opts.load_retry_interval_micros / 1e6,
            allow_labels_for_unavailable=opts.allow_version_labels_for_unavailable_models,
            on_state=self.metrics.version if self.metrics else None)
        # One queue to the model for both front ends, with as many places as
        # their two thread flags together: no transport waits in a line of its own.
        rest_places = opts.rest_api_num_threads if opts.rest_api_port else 0
        self.admission = Admission(opts.grpc_max_threads + rest_places)
        self.core = Core(self.repository, self.metrics, opts.enable_signature_method_name_check,
                         self.admission)

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
            self.grpc = GrpcServer(self.core, opts.host, opts.port, rpc_threads(self.admission.limit),
                                   opts.grpc_channel_arguments, opts.grpc_socket_path,
                                   opts.enable_serialization_as_tensor_content)
            if opts.rest_api_port:
                self.rest = RestServer(self.core, opts.host, opts.rest_api_port,
                                       opts.rest_api_timeout_in_ms, self.metrics,
                                       self.monitoring.prometheus_path, opts.rest_api_max_body_bytes)
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
                config = _config.read_model_config(path)
                if config == self.model_config:
                    continue
                self.model_config = config
                self.repository.apply_config(config)
                log.info("Reloaded model config from %s", path)
            except (OSError, ServingError) as e:
                log.error("Reloading model config from %s failed: %s", path, e)

    def stop(self, grace: float = 30.0) -> None:
        """Refuse new calls on both front ends at once, let the calls in flight
        finish (all within `grace` seconds), then unload everything."""
        deadline = time.monotonic() + grace

        def left() -> float:
            return max(0.0, deadline - time.monotonic())
        self._stop.set()
        self.core.close()  # from here on both front ends answer UNAVAILABLE (REST: 503)
        grpc_stopped = self.grpc.stop(grace) if self.grpc is not None else None
        if self.rest is not None:
            self.rest.stop(left())
        if grpc_stopped is not None:
            grpc_stopped.wait(left())
        self.core.drain(left())
        self.repository.stop()


def _exit_now(code: int) -> None:
    """Leave at once, whatever threads (a model load, a stuck request) still run."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _serve(opts: Options, grace: float = 30.0) -> int:
    """Start (in a thread, so a signal is answered in every state), serve until
    SIGTERM/SIGINT, stop gracefully; a second signal exits without waiting."""
    stop, ready, outcome = threading.Event(), threading.Event(), {}

    def on_signal(signum, frame):
        if stop.is_set():
            log.warning("Second signal while shutting down: exiting now")
            _exit_now(0)
        stop.set()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    def start():
        try:
            outcome["app"] = App(opts)
            outcome["app"].start()
        except StartupError as e:
            outcome["error"] = e
        except BaseException as e:  # report it, and never leave the main thread waiting
            log.exception("Start-up failed")
            outcome["error"] = e
        ready.set()
    threading.Thread(target=start, name="start-up", daemon=True).start()
    while not (ready.is_set() or stop.is_set()):
        stop.wait(0.1)
    if not ready.is_set():
        print("Shutting down during start-up", flush=True)
        _exit_now(0)  # nothing is served yet; a load in progress need not finish
    if "error" in outcome:
        print(f"error: {outcome['error']}", file=sys.stderr)
        return 1
    while not stop.wait(1.0):
        pass
    print("Shutting down: draining requests in flight", flush=True)
    stopper = threading.Thread(target=outcome["app"].stop, args=(grace,), name="shutdown", daemon=True)
    stopper.start()
    stopper.join(grace + 5.0)
    if stopper.is_alive():
        log.warning("Shutdown did not finish within %.0fs: exiting anyway", grace + 5.0)
        _exit_now(0)
    return 0


def main(argv: list[str]) -> int:
    """`python -m server`: returns the process exit code."""
    from ._flags import FlagError, parse_flags, usage
    if any(a in ("--help", "-h", "-help") for a in argv):
        print(usage())
        return 0
    try:
        opts = parse_flags(argv)
    except FlagError as e:
        print(f"error: {e}\n\n{usage()}", file=sys.stderr)
        return 2
    _logs.configure(tensorflow_logs=opts.log_tensorflow)
    if opts.version:
        import tensorflow as tf
        print(f"TensorFlow ModelServer: {tf.__version__}-embedded (python -m server)\n"
              f"TensorFlow Library: {tf.__version__}")
        return 0
    return _serve(opts)
