"""`python -m server`'s command line and process lifecycle: tensorflow_model_server's
flags, refusals with clear messages, start-up output, start-up failures, the
Unix socket, and SIGTERM draining requests in flight before exiting 0."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

import protocol
from server import ServerProcess, free_port, parse_flags
from tests._polling import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_server(*flags, timeout=120):
    env = dict(os.environ)  # the server sets its own TensorFlow environment defaults
    return subprocess.run([sys.executable, "-m", "server", *flags], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_flag_defaults_are_tensorflow_model_servers():
    opts = parse_flags([])
    assert (opts.port, opts.rest_api_port, opts.model_name, opts.rest_api_timeout_in_ms,
            opts.file_system_poll_wait_seconds, opts.max_num_load_retries, opts.enable_model_warmup,
            opts.enable_batching) == (protocol.GRPC_PORT, 0, "default", 30000, 1, 5, True, False)


def test_an_unknown_flag_is_refused():
    done = run_server("--model_base_path=/m", "--bogus_flag=1")
    assert done.returncode == 2
    assert "unknown command line flag 'bogus_flag'" in done.stderr


def test_an_unimplemented_tensorflow_model_server_flag_is_refused_with_the_reason():
    done = run_server("--model_base_path=/m", "--ssl_config_file=/etc/ssl.config")
    assert done.returncode == 2
    assert "--ssl_config_file=/etc/ssl.config is a tensorflow_model_server flag this server does " \
           "not implement" in done.stderr


def test_an_unimplemented_flag_given_its_default_is_accepted():
    assert parse_flags(["--enable_profiler=true", "--flush_filesystem_caches"]).port == protocol.GRPC_PORT


def test_a_flag_value_of_the_wrong_type_is_refused():
    done = run_server("--port=http")
    assert done.returncode == 2 and "--port=http: expected a int" in done.stderr


def test_version_flag_prints_the_tensorflow_version():
    done = run_server("--version")
    assert done.returncode == 0 and f"TensorFlow Library: {tf.__version__}" in done.stdout


def test_without_a_model_the_server_refuses_to_start():
    done = run_server("--port=0")
    assert done.returncode == 1 and "--model_config_file and --model_base_path are empty" in done.stderr


def test_a_model_config_file_that_does_not_parse_is_refused_as_tensorflow_model_server_does(tmp_path):
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "m" bogus_field: 1 } }')
    done = run_server(f"--model_config_file={config}")
    assert done.returncode == 1
    first, detail = done.stderr.split("Error parsing text-format tensorflow.serving.ModelServerConfig: ", 1)
    assert detail.startswith('1:40: Message type "tensorflow.serving.ModelConfig" has no field named '
                             '"bogus_field"'), detail
    assert f"Invalid protobuf file: '{config}'" in detail


def test_a_model_whose_warmup_fails_stops_start_up(server_models, tmp_path_factory):
    models = server_models
    done = run_server("--model_name=badwarm", f"--model_base_path={models}/badwarm",
                      "--max_num_load_retries=0", "--port=0", f"--grpc_socket_path={tmp_path_factory.mktemp('s')}/s")
    assert done.returncode == 1
    assert "Failed to warm up model badwarm version 1" in done.stderr
    assert 'Serving signature key "no_such_signature" not found.' in done.stderr


@pytest.fixture(scope="module")
def flagged_srv(server_models, tmp_path_factory):
    """A server with tensorflow_model_server's less common flags: batching, a Unix socket,
    gRPC channel arguments, thread and parallelism settings."""
    models = server_models
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "batching.config").write_text("max_batch_size { value: 64 } batch_timeout_micros { value: 1500000 }")
    srv = ServerProcess(["--model_name=hpt", f"--model_base_path={models}/hpt", "--enable_batching",
                         f"--batching_parameters_file={tmp}/batching.config",
                         f"--grpc_socket_path={tmp}/grpc.sock",
                         "--grpc_channel_arguments=grpc.max_concurrent_streams=64,grpc.max_receive_message_length=65536",
                         "--grpc_max_threads=4", "--rest_api_num_threads=4",
                         "--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=1"])
    srv.socket_path = f"{tmp}/grpc.sock"
    with srv:
        yield srv


def test_start_up_prints_the_addresses_and_available_versions(flagged_srv):
    out = flagged_srv.stdout
    assert f"Running gRPC ModelServer at 127.0.0.1:{flagged_srv.grpc_port}" in out
    assert f"Exporting HTTP/REST API at:127.0.0.1:{flagged_srv.rest_port}" in out
    assert "Model hpt: versions [2] AVAILABLE" in out


def test_grpc_channel_arguments_replace_the_unlimited_message_size(flagged_srv):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "hpt"
    req.inputs["x"].CopyFrom(tf.make_tensor_proto([0.0] * 20000, tf.float32))  # 80 KB > 64 KiB
    with grpc.insecure_channel(flagged_srv.grpc_target) as ch:
        with pytest.raises(grpc.RpcError) as err:
            prediction_service_pb2_grpc.PredictionServiceStub(ch).Predict(req, timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_grpc_is_also_served_on_the_unix_socket(flagged_srv):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "hpt"
    req.inputs["x"].CopyFrom(tf.make_tensor_proto([0.0], tf.float32))
    with grpc.insecure_channel(f"unix:{flagged_srv.socket_path}") as ch:
        resp = prediction_service_pb2_grpc.PredictionServiceStub(ch).Predict(req, timeout=30)
    assert list(resp.outputs["y"].float_val) == [3.0]


def test_a_rest_request_over_rest_api_timeout_in_ms_gets_504(server_models, tmp_path_factory):
    models = server_models
    tmp = tmp_path_factory.mktemp("timeout")
    (tmp / "batching.config").write_text("max_batch_size { value: 64 } batch_timeout_micros { value: 1000000 }")
    with ServerProcess(["--model_name=hpt", f"--model_base_path={models}/hpt", "--enable_batching",
                        f"--batching_parameters_file={tmp}/batching.config",
                        "--rest_api_timeout_in_ms=200"]) as srv:
        # The lone request waits 1 s for its batch, past the 200 ms REST deadline.
        r = requests.post(srv.rest_url + "/v1/models/hpt:predict", json={"instances": [1.0]}, timeout=30)
        assert r.status_code == 504 and "Deadline exceeded" in r.json()["error"]


def broken_version(base, version: int) -> None:
    """A version directory that can never load (its saved_model.pb is not one)."""
    tmp = base / f"{version}.partial"
    tmp.mkdir(parents=True)
    (tmp / "saved_model.pb").write_bytes(b"not a SavedModel")
    os.rename(tmp, base / str(version))


RETRYING = "failed, retrying (1 of 5) in 60.0s"


def test_sigterm_while_start_up_retries_a_failed_load_exits_within_seconds(tmp_path):
    broken_version(tmp_path / "m", 1)
    err = tmp_path / "stderr.log"
    with open(err, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "server", "--model_name=m",
                                 f"--model_base_path={tmp_path / 'm'}", f"--port={free_port()}"],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=f,
                                env=dict(os.environ))
    try:
        wait_for(lambda: RETRYING in err.read_text(), 120, "a failed load to be retried")
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - start < 5
    finally:
        proc.kill()
        proc.wait()


def test_sigterm_while_a_new_version_keeps_failing_to_load_exits_within_seconds(server_models, tmp_path_factory):
    base = tmp_path_factory.mktemp("retrying") / "m"
    shutil.copytree(f"{server_models}/hpt/1", base / "1")
    with ServerProcess(["--model_name=m", f"--model_base_path={base}"]) as srv:
        broken_version(base, 2)
        wait_for(lambda: RETRYING in srv.stderr, 120, "a failed load to be retried")
        start = time.monotonic()
        assert srv.stop(timeout=30) == 0
        assert time.monotonic() - start < 5


def test_sigterm_refuses_new_calls_at_once_lets_requests_in_flight_finish_and_exits_zero(server_models,
                                                                                        tmp_path_factory):
    models = server_models
    tmp = tmp_path_factory.mktemp("refuse")
    (tmp / "batching.config").write_text("max_batch_size { value: 64 } batch_timeout_micros { value: 3000000 }")
    srv = ServerProcess(["--model_name=hpt", f"--model_base_path={models}/hpt", "--enable_batching",
                         f"--batching_parameters_file={tmp}/batching.config"]).start()
    result = {}

    def call():
        r = requests.post(srv.rest_url + "/v1/models/hpt:predict", json={"instances": [1.0]}, timeout=30)
        result["r"] = (r.status_code, r.json())
    in_flight = threading.Thread(target=call)
    in_flight.start()
    time.sleep(0.5)  # the REST request now waits 3 s for its batch
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "hpt"
    req.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0], tf.float32))
    with grpc.insecure_channel(srv.grpc_target) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        srv.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            prediction_service_pb2_grpc.PredictionServiceStub(ch).Predict(req, timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() - start < 1
    in_flight.join()
    assert result["r"] == (200, {"predictions": [3.5]})
    assert srv.stop() == 0
    assert "Shutting down" in srv.stdout


SERVER_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [IWE] server\] ")
SERVER_STDOUT = re.compile(r"^(Running gRPC ModelServer at |Exporting HTTP/REST API at:|Model \w+: versions )")


def test_start_up_prints_only_the_servers_own_lines(server_models, tmp_path_factory):
    models = server_models
    with ServerProcess(["--model_name=warm", f"--model_base_path={models}/warm"], env={**os.environ}) as srv:
        pass
    err = [line for line in srv.stderr.splitlines() if line.strip()]
    assert err and all(SERVER_LOG_LINE.match(line) for line in err), "\n".join(err)
    assert "Number of warmup records read: 3." in srv.stderr
    out = [line for line in srv.stdout.splitlines() if line.strip() and not line.startswith("Shutting down")]
    assert out and all(SERVER_STDOUT.match(line) for line in out), "\n".join(out)


def test_server_all_is_exactly_its_public_names():
    import server
    assert sorted(server.__all__) == sorted(n for n in dir(server) if not n.startswith("_"))
