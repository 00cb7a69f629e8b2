"""clients/ against the real server serving the real all-MiniLM-L6-v2 export (slow)."""
from __future__ import annotations

import numpy as np
import pytest

from clients import GrpcClient, RestClient
from server import ServerProcess

pytestmark = pytest.mark.slow

TEXTS = ["This is an example sentence.", "Each sentence is converted.",
         "TensorFlow Serving answers over REST and gRPC.", "héllo wörld, ünïcode", "",
         "A much longer sentence that goes on and on " * 8]


@pytest.fixture(scope="module")
def minilm_server(minilm_model_dir):
    with ServerProcess(["--model_name=minilm", f"--model_base_path={minilm_model_dir}"], timeout=300) as server:
        yield server


@pytest.fixture(scope="module")
def minilm_text(minilm_model_dir):
    import tensorflow as tf

    fn = tf.saved_model.load(str(minilm_model_dir / "1")).signatures["text"]
    return lambda texts: {k: v.numpy() for k, v in fn(text=tf.constant(texts)).items()}


def test_rest_and_grpc_give_exactly_the_in_process_minilm_text_outputs(minilm_server, minilm_text):
    expected = minilm_text(TEXTS)
    assert expected["embedding"].shape == (len(TEXTS), 384)
    with RestClient(minilm_server.rest_url) as rest, GrpcClient(minilm_server.grpc_target) as grpc_:
        for client in (rest, grpc_):
            got = client.predict("minilm", {"text": TEXTS}, signature_name="text")
            assert set(got) == set(expected)
            for name in expected:
                assert got[name].dtype == expected[name].dtype
                np.testing.assert_array_equal(got[name], expected[name])


def test_predict_batched_over_both_matches_in_process_minilm(minilm_server, minilm_text):
    texts = [f"{t} ({i})" for i in range(100) for t in TEXTS[:4]]
    expected = minilm_text(texts)["embedding"]
    with RestClient(minilm_server.rest_url) as rest, GrpcClient(minilm_server.grpc_target) as grpc_:
        for client in (rest, grpc_):
            result = client.predict_batched("minilm", texts, batch_size=32, concurrency=2)
            assert result.failed == []
            np.testing.assert_allclose(result["embedding"], expected, atol=1e-5)
