"""clients/ against the real server serving the real all-MiniLM-L6-v2 export (slow)."""
from __future__ import annotations

import numpy as np
import pytest

from clients import GrpcClient, RestClient
from tests._signature_checks import assert_same_outputs, call

pytestmark = pytest.mark.slow

TEXTS = ["This is an example sentence.", "Each sentence is converted.",
         "TensorFlow Serving answers over REST and gRPC.", "héllo wörld, ünïcode", "",
         "A much longer sentence that goes on and on " * 8]


@pytest.fixture(scope="module")
def minilm_text(minilm_model_dir):
    return lambda texts: call(minilm_model_dir / "1", "text", {"text": texts})


def test_rest_and_grpc_give_exactly_the_in_process_minilm_text_outputs(minilm_server, minilm_text):
    expected = minilm_text(TEXTS)
    assert expected["embedding"].shape == (len(TEXTS), 384)
    with RestClient(minilm_server.rest_url) as rest, GrpcClient(minilm_server.grpc_target) as grpc_:
        for client in (rest, grpc_):
            assert_same_outputs(client.predict("minilm", {"text": TEXTS}, signature_name="text"), expected)


def test_predict_batched_over_both_matches_in_process_minilm(minilm_server, minilm_text):
    texts = [f"{t} ({i})" for i in range(100) for t in TEXTS[:4]]
    expected = minilm_text(texts)["embedding"]
    with RestClient(minilm_server.rest_url) as rest, GrpcClient(minilm_server.grpc_target) as grpc_:
        for client in (rest, grpc_):
            result = client.predict_batched("minilm", texts, batch_size=32, concurrency=2)
            assert result.failed == []
            np.testing.assert_allclose(result["embedding"], expected, atol=1e-5)
