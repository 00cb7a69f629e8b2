"""The real model: all-MiniLM-L6-v2 exported once per session, checked against PyTorch."""
from __future__ import annotations

import numpy as np
import pytest

from export import read_signatures
from tests._references import hf_tokenizer, sentence_embeddings
from tests._signature_checks import call, check_signature

pytestmark = pytest.mark.slow

SENTENCES = [
    "A man is eating food.",
    "A man is riding a white horse on an enclosed ground.",
    "The new movie is awesome, I loved every minute of it!",
    "TensorFlow Serving makes deploying models to production straightforward.",
    "Can you recommend a good restaurant near the train station?",
    "The quick brown fox jumps over the lazy dog.",
    "Café au lait costs €3.50 in Paris; naïve tourists pay more.",
    "Short.",
    "Scientists have discovered that honey never spoils: edible honey was found in ancient Egyptian tombs, "
    "thousands of years old, and it was still perfectly good to eat after all that time.",
]


@pytest.fixture(scope="module")
def pytorch_embeddings(minilm_checkpoint):
    """What sentence-transformers computes: fast tokenizer + BertModel + mean pooling + L2 normalisation."""
    return sentence_embeddings(minilm_checkpoint, SENTENCES, truncation=True, max_length=256)


def test_text_signature_matches_pytorch_sentence_embeddings(minilm_model_dir, pytorch_embeddings):
    expected, _ = pytorch_embeddings
    got = check_signature(minilm_model_dir / "1", "text", {"text": SENTENCES})["embedding"]
    assert got.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_tokens_signature_agrees_with_text_signature(minilm_model_dir, pytorch_embeddings):
    _, encoded = pytorch_embeddings
    tokens = call(minilm_model_dir / "1", "tokens", encoded)
    text = call(minilm_model_dir / "1", "text", {"text": SENTENCES})
    np.testing.assert_allclose(tokens["embedding"], text["embedding"], atol=1e-6)
    assert tokens["last_hidden_state"].shape == (*encoded["input_ids"].shape, 384)


def test_max_length_defaults_to_sentence_transformers_256(minilm_model_dir, minilm_checkpoint):
    long_text = " ".join(["word"] * 600)
    encoded = dict(hf_tokenizer(minilm_checkpoint)([long_text], truncation=True, max_length=256, return_tensors="np"))
    assert encoded["input_ids"].shape == (1, 256)
    np.testing.assert_allclose(call(minilm_model_dir / "1", "text", {"text": [long_text]})["embedding"],
                               call(minilm_model_dir / "1", "tokens", encoded)["embedding"], atol=1e-6)


def test_saved_model_runs_in_a_session_by_tensor_names_as_tf_serving_does(minilm_model_dir):
    """TF Serving loads the `serve` MetaGraph into a Session and feeds the SignatureDef's tensor names."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops, as the serving binary links them)

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(minilm_model_dir / "1"))
        signature = meta.signature_def["serving_default"]
        out = session.run(signature.outputs["embedding"].name, {signature.inputs["text"].name: SENTENCES[:3]})
    expected = call(minilm_model_dir / "1", "text", {"text": SENTENCES[:3]})["embedding"]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_signatures_have_dynamic_batch_and_sequence(minilm_model_dir):
    signatures = read_signatures(minilm_model_dir / "1")
    assert signatures["tokens"]["inputs"]["input_ids"]["shape"] == [-1, -1]
    assert signatures["embeds"]["inputs"]["inputs_embeds"]["shape"] == [-1, -1, 384]
    assert signatures["text"]["outputs"]["embedding"]["shape"] == [-1, 384]
