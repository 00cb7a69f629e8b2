"""Versions while serving: new versions on disk are loaded and old ones
unloaded with no request lost, a broken version leaves the previous one
serving, and HandleReloadConfigRequest / config-file polling add and remove
models. Real server processes, real sockets."""
from __future__ import annotations

import os
import shutil
import threading
import time

import grpc
import pytest
import requests
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (model_management_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from export._layout import next_version, publish, version_dir
from export._errors import ExportError
from server import ServerProcess
from tests._model_configs import config_entry, model_config_text
from tests._polling import wait_for
from tests._server_models import write_warmup


def copy_version(src: str, dest: str) -> None:
    """Make a version appear at once and complete, as an export's final rename does."""
    shutil.copytree(src, dest + ".partial")
    os.rename(dest + ".partial", dest)


def states(srv, model):
    return {int(s["version"]): s for s in srv.model_status(model)}


@pytest.fixture(scope="module")
def swap(server_models, tmp_path_factory):
    """A server on one model (latest policy) polling its base path every second."""
    models = server_models
    base = tmp_path_factory.mktemp("swap") / "m"
    base.mkdir()
    copy_version(f"{models}/hpt/1", str(base / "1"))
    with ServerProcess(["--model_name=m", f"--model_base_path={base}", "--file_system_poll_wait_seconds=1",
                        "--max_num_load_retries=0"]) as srv:
        yield srv, base, models


def test_new_version_replaces_the_old_without_losing_a_request(swap):
    """Every request is answered; each stream moves from version 1 to 2 once; a request
    sent after version 1 reports END is answered by version 2. (An answer computed by
    version 1 just before END may still arrive after it: send times decide, not arrival.)"""
    srv, base, models = swap
    failures, streams, stop = [], [[], [], []], threading.Event()

    def rest_stream(answers):
        with requests.Session() as s:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    r = s.post(srv.rest_url + "/v1/models/m:predict", json={"instances": [1.0]}, timeout=30)
                    if r.status_code != 200:
                        failures.append(r.text)
                    else:
                        answers.append((sent, r.json()["predictions"][0]))
                except requests.RequestException as e:
                    failures.append(repr(e))

    def grpc_stream(answers):
        with grpc.insecure_channel(srv.grpc_target) as ch:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
            req = predict_pb2.PredictRequest()
            req.model_spec.name = "m"
            req.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0], tf.float32))
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    answers.append((sent, stub.Predict(req, timeout=30).outputs["y"].float_val[0]))
                except grpc.RpcError as e:
                    failures.append(f"{e.code()}: {e.details()}")

    threads = [threading.Thread(target=f, args=(answers,))
               for f, answers in zip((rest_stream, rest_stream, grpc_stream), streams)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        copy_version(f"{models}/hpt/2", str(base / "2"))
        wait_for(lambda: states(srv, "m").get(1, {}).get("state") == "END", what="version 1 to unload")
        ended = time.monotonic()
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    values = [v for answers in streams for _, v in answers]
    assert 2.5 in values and 3.5 in values  # served by version 1, then version 2
    for answers in streams:
        in_order = [v for _, v in answers]
        switch = in_order.index(3.5) if 3.5 in in_order else len(in_order)
        assert set(in_order[:switch]) <= {2.5} and set(in_order[switch:]) <= {3.5}
        assert {v for sent, v in answers if sent > ended} <= {3.5}
    assert any(sent > ended for answers in streams for sent, _ in answers)
    assert states(srv, "m")[2]["state"] == "AVAILABLE"


def test_a_version_that_fails_to_load_is_reported_and_the_previous_keeps_serving(swap):
    srv, base, _ = swap
    srv.wait_available("m", 2)
    broken = base / "3.partial"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    os.rename(broken, base / "3")
    status = wait_for(lambda: states(srv, "m").get(3) if states(srv, "m").get(3, {}).get("state") == "END"
                      else None, what="version 3 to fail")
    assert status["status"]["error_code"] != "OK" and status["status"]["error_message"]
    assert states(srv, "m")[2]["state"] == "AVAILABLE"
    r = requests.post(srv.rest_url + "/v1/models/m:predict", json={"instances": [1.0]}, timeout=30)
    assert r.json() == {"predictions": [3.5]}


# ---------------------------------------------------------------- config reload

def model_config(models: str, *entries: tuple[str, str]) -> str:
    """Model "a" (hpt version 1 only) and `entries` ((name, base path) with the default policy)."""
    return model_config_text(config_entry("a", f"{models}/hpt", policy="specific { versions: 1 }"),
                             *(config_entry(name, path) for name, path in entries))


@pytest.fixture(scope="module")
def configured(server_models, tmp_path_factory):
    models = server_models
    path = tmp_path_factory.mktemp("reload") / "models.config"
    path.write_text(model_config(models))
    with ServerProcess([f"--model_config_file={path}", "--model_config_file_poll_wait_seconds=1",
                        "--max_num_load_retries=0"], models=["a"]) as srv:
        yield srv, path, models


def reload_config(srv, text, timeout=60):
    req = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(text, req.config)
    with grpc.insecure_channel(srv.grpc_target) as ch:
        return model_service_pb2_grpc.ModelServiceStub(ch).HandleReloadConfigRequest(req, timeout=timeout)


def test_specific_version_policy_serves_only_those_versions(configured):
    srv, _, _ = configured
    assert sorted(states(srv, "a")) == [1]
    r = requests.post(srv.rest_url + "/v1/models/a:predict", json={"instances": [1.0]}, timeout=30)
    assert r.json() == {"predictions": [2.5]}


def test_reload_config_request_adds_a_model(configured):
    srv, _, models = configured
    resp = reload_config(srv, model_config(models, ("b", f"{models}/hpt")))
    assert resp.status.error_code == 0
    r = requests.post(srv.rest_url + "/v1/models/b:predict", json={"instances": [1.0]}, timeout=30)
    assert r.json() == {"predictions": [3.5]}


def test_reload_config_request_removes_a_model(configured):
    srv, _, models = configured
    reload_config(srv, model_config(models, ("b", f"{models}/hpt")))
    reload_config(srv, model_config(models))
    r = requests.post(srv.rest_url + "/v1/models/b:predict", json={"instances": [1.0]}, timeout=30)
    assert (r.status_code, r.json()) == (404, {"error": "Servable not found for request: Latest(b)"})
    assert {s["state"] for s in srv.model_status("b")} == {"END"}


def test_reload_config_refuses_a_label_on_an_unavailable_version(configured):
    srv, _, models = configured
    text = model_config_text(config_entry("a", f"{models}/hpt", policy="specific { versions: 1 }",
                                          labels={"next": 2}))
    with pytest.raises(grpc.RpcError) as e:
        reload_config(srv, text)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "Request to assign label to version 2 of model a" in e.value.details()


def test_config_file_changes_are_picked_up_by_polling(configured):
    srv, path, models = configured
    path.write_text(model_config(models, ("c", f"{models}/hpt")))
    srv.wait_available("c", 2, timeout=30)
    r = requests.post(srv.rest_url + "/v1/models/c/versions/2:predict", json={"instances": [0.0]}, timeout=30)
    assert r.json() == {"predictions": [3.0]}


# ------------------------------------------------- version directory spelling

def half_plus_two(path) -> None:
    """TF Serving's half_plus_two in miniature: serving_default x -> y = 0.5x + 2."""
    class HalfPlusTwo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": 0.5 * x + 2.0}
    module = HalfPlusTwo()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def test_a_version_directory_with_leading_zeros_is_loaded_warmed_up_labelled_and_unloaded(tmp_path):
    base = tmp_path / "half_plus_two"
    half_plus_two(base / "00000123")
    write_warmup(str(base / "00000123"), "serving_default", 2)
    config = tmp_path / "models.config"
    config.write_text(model_config_text(config_entry("half_plus_two", base, labels={"stable": 123})))
    with ServerProcess([f"--model_config_file={config}", "--file_system_poll_wait_seconds=1",
                        "--max_num_load_retries=0"], models=["half_plus_two"]) as srv:
        url = srv.rest_url + "/v1/models/half_plus_two"
        for path in ("", "/versions/123", "/labels/stable"):
            r = requests.post(f"{url}{path}:predict", json={"instances": [1.0, 2.0, 5.0]}, timeout=30)
            assert r.json() == {"predictions": [2.5, 3.0, 4.5]}, path
        assert f"{base / '00000123'}. Number of warmup records read: 2." in srv.stderr
        assert {v: s["state"] for v, s in states(srv, "half_plus_two").items()} == {123: "AVAILABLE"}
        copy_version(str(base / "00000123"), str(base / "00000124"))
        wait_for(lambda: states(srv, "half_plus_two").get(123, {}).get("state") == "END",
                 what="version 123 to be unloaded for 124")
        assert states(srv, "half_plus_two")[124]["state"] == "AVAILABLE"
        assert states(srv, "half_plus_two")[123]["status"]["error_code"] == "OK"
        assert "Unloaded servable version {name: half_plus_two version: 123}" in srv.stderr


def test_the_export_takes_the_number_of_a_zero_padded_version_directory(tmp_path):
    (tmp_path / "00000123").mkdir()
    assert next_version(tmp_path) == 124
    assert version_dir(tmp_path, 123) == tmp_path / "00000123"
    staged = tmp_path / "staged"
    staged.mkdir()
    with pytest.raises(ExportError, match="version 123 already exists as .*00000123"):
        publish(staged, tmp_path / "123")


# ------------------------------------------------- reloads that cannot finish

@pytest.fixture(scope="module")
def reloading(server_models, tmp_path_factory):
    """Batching with a 1 s timeout makes each warmup record of `warm` wait 1 s: a slow load."""
    models = server_models
    tmp = tmp_path_factory.mktemp("reloading")
    (tmp / "batching.config").write_text("max_batch_size { value: 8 } batch_timeout_micros { value: 1000000 }")
    (tmp / "models.config").write_text(model_config(models))
    broken = tmp / "broken"
    (broken / "1").mkdir(parents=True)
    (broken / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    with ServerProcess([f"--model_config_file={tmp / 'models.config'}", "--enable_batching",
                        f"--batching_parameters_file={tmp / 'batching.config'}"], models=["a"]) as srv:
        yield srv, models, broken


def test_a_model_that_keeps_failing_to_load_does_not_hold_back_later_reloads(reloading):
    srv, models, broken = reloading
    with pytest.raises(grpc.RpcError) as e:
        reload_config(srv, model_config(models, ("broken", broken)), timeout=2)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # it retries for minutes
    start = time.monotonic()
    resp = reload_config(srv, model_config(models, ("broken", broken), ("b", f"{models}/hpt")), timeout=30)
    assert resp.status.error_code == 0 and time.monotonic() - start < 10
    r = requests.post(srv.rest_url + "/v1/models/b:predict", json={"instances": [1.0]}, timeout=30)
    assert r.json() == {"predictions": [3.5]}
    assert states(srv, "broken")[1]["state"] in ("LOADING", "END")  # the file system poll retries it


def test_a_reload_whose_caller_gave_up_waiting_is_not_applied_later(reloading):
    srv, models, _ = reloading
    slow = threading.Thread(target=reload_config, args=(srv, model_config(models, ("warm", f"{models}/warm"))))
    slow.start()  # loading `warm` takes about 3 s (three warmup records, 1 s each)
    wait_for(lambda: srv.model_status("warm"), what="warm to start loading")
    with pytest.raises(grpc.RpcError) as e:
        reload_config(srv, model_config(models, ("warm", f"{models}/warm"), ("late", f"{models}/hpt")), timeout=0.5)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    slow.join()
    time.sleep(1.0)
    assert srv.model_status("late") == []
    srv.wait_available("warm")
