"""Length bucketing in the string signatures, and TF Serving's --mixed_precision=bfloat16.

The bucketing mechanism is checked on a small TF function (what sub-batches it
forms, the row order and output shapes it returns), then end to end on a tiny
BERT exported with a small token budget, so that test texts really split into
sub-batches: the reloaded SavedModel, run in a TF1 session by tensor names as
TF Serving runs it, must equal the plain (`tokens`) computation.
"""
from __future__ import annotations

import numpy as np
import pytest

TEXTS = ["short", "a somewhat longer text with more words in it than the first",
         "mid length text here", "x", "the longest text of this batch, by a margin: it goes on and on and on "
         "for a good while, with commas, clauses and words", "two words"]


def _probe(encoded):
    """A stand-in encoder whose outputs show which sub-batch width each row ran at."""
    import tensorflow as tf

    mask = tf.cast(encoded["attention_mask"], tf.float32)
    batch, width = tf.shape(mask)[0], tf.shape(mask)[1]
    return {"tokens": tf.reduce_sum(encoded["attention_mask"], 1),
            "width": tf.fill([batch], width),
            "per_token": mask[:, :, None] * tf.ones([1, 1, 3]),
            "pairwise": mask[:, None, :, None] * mask[:, None, None, :]}


def _encoded(lengths):
    import tensorflow as tf

    width = max(lengths)
    mask = np.array([[1] * n + [0] * (width - n) for n in lengths], np.int32)
    return {"input_ids": tf.constant(mask * 7), "attention_mask": tf.constant(mask)}


def test_sub_batches_are_length_ordered_and_outputs_come_back_in_row_order():
    from signatures import run_in_buckets

    lengths = [9, 2, 30, 3, 2, 28, 10]
    out = {k: v.numpy() for k, v in run_in_buckets(_encoded(lengths), _probe, max_tokens=32).items()}
    assert out["tokens"].tolist() == lengths
    # ordered 2,2,3 | 9,10 | 28 | 30: each row ran padded to its own sub-batch's longest row
    assert out["width"].tolist() == [10, 3, 30, 3, 3, 28, 10]
    assert out["per_token"].shape == (7, 30, 3)  # padded back to the batch's longest row
    assert out["pairwise"].shape == (7, 1, 30, 30)
    plain = {k: v.numpy() for k, v in _probe(_encoded(lengths)).items()}
    np.testing.assert_array_equal(out["per_token"], plain["per_token"])
    np.testing.assert_array_equal(out["pairwise"], plain["pairwise"])


@pytest.mark.parametrize("lengths", [[40], [3, 5, 4, 6]])
def test_one_row_or_a_batch_within_the_budget_takes_the_plain_path(lengths):
    from signatures import run_in_buckets

    out = run_in_buckets(_encoded(lengths), _probe, max_tokens=32)
    assert out["width"].numpy().tolist() == [max(lengths)] * len(lengths)


def test_a_batch_of_similar_lengths_takes_the_plain_path_above_min_fill():
    from signatures import run_in_buckets

    lengths = [20, 18, 19, 17, 20, 16]  # 110 real of 120 padded tokens: fill 0.92, over the 32-token budget
    bucketed = run_in_buckets(_encoded(lengths), _probe, max_tokens=32, min_fill=0.95)
    assert len(set(bucketed["width"].numpy().tolist())) > 1
    plain = run_in_buckets(_encoded(lengths), _probe, max_tokens=32, min_fill=0.9)
    assert plain["width"].numpy().tolist() == [20] * len(lengths)


def test_budget_must_be_positive_and_min_fill_a_fraction():
    from signatures import BucketPolicy

    with pytest.raises(ValueError, match="max_tokens"):
        BucketPolicy(0)
    with pytest.raises(ValueError, match="min_fill"):
        BucketPolicy(256, min_fill=1.5)


@pytest.fixture(scope="module")
def bucketed_dir(tiny_extras_dir):
    """Exported with a 16-token budget, hidden states and attentions (conftest.py)."""
    return tiny_extras_dir / "1"


def test_bucketed_export_passes_bucket_parity_and_records_the_policy(bucketed_dir):
    from export import read_report

    card = read_report(bucketed_dir)
    buckets = card["length_buckets"]
    assert buckets["policy"]["max_tokens"] == 16
    assert buckets["parity"]["ok"] and buckets["parity"]["bound"] == 1e-6
    errors = buckets["parity"]["max_abs_error"]
    assert set(errors) == {"text: embedding", "text: hidden_states", "text: attentions"}
    assert max(errors.values()) <= 1e-6
    assert not card["ops"]["missing"] and {"While", "StatelessWhile"} & set(card["ops"]["ops"])


def test_tf1_session_by_tensor_names_equals_the_plain_computation(bucketed_dir, tiny_checkpoint):
    """The bucketed `text` signature, loaded and run as TF Serving does, equals `tokens` on the same ids."""
    from server import load_saved_model
    from tests._references import hf_tokenizer

    # The in-graph tokenizer equals the checkpoint's on these plain ASCII texts (tokenizer parity).
    encoded = dict(hf_tokenizer(tiny_checkpoint)(TEXTS, padding=True, return_tensors="np"))
    loaded = load_saved_model(bucketed_dir)
    try:
        run = loaded.session.run
        text, tokens = loaded.signature_defs["text"], loaded.signature_defs["tokens"]
        got = run({k: v.name for k, v in text.outputs.items()},
                  {text.inputs["text"].name: np.array([t.encode() for t in TEXTS], object)})
        want = run({k: v.name for k, v in tokens.outputs.items()},
                   {v.name: encoded[k].astype(np.int32) for k, v in tokens.inputs.items()})
    finally:
        loaded.close()
    mask = encoded["attention_mask"].astype(bool)
    assert got["hidden_states"].shape == want["hidden_states"].shape  # [batch, layers + 1, longest row, hidden]
    assert got["attentions"].shape == want["attentions"].shape
    np.testing.assert_allclose(got["embedding"], want["embedding"], atol=1e-6)
    real = mask[:, None, :, None]
    np.testing.assert_allclose(np.where(real, got["hidden_states"], 0), np.where(real, want["hidden_states"], 0),
                               atol=1e-6)


def test_no_length_buckets_exports_the_plain_graph(tiny_checkpoint, tmp_path):
    from export import collect_ops, read_report
    from tests._run_cache import export

    version = export(tiny_checkpoint, tmp_path, "plain", length_buckets=False, verify=False, warmup=False) / "1"
    assert not {"While", "StatelessWhile"} & collect_ops(version)
    card = read_report(version)
    assert card["options"]["length_buckets"] is False and card["length_buckets"] is None


# -- --mixed_precision=bfloat16 -------------------------------------------------------------

def test_mixed_precision_bfloat16_turns_on_the_onednn_bf16_rewrite():
    from tensorflow.core.protobuf import rewriter_config_pb2

    from server import parse_flags

    config = parse_flags(["--mixed_precision=bfloat16"]).session_options().config_proto()
    assert config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == \
        rewriter_config_pb2.RewriterConfig.ON
    plain = parse_flags([]).session_options().config_proto()
    assert plain.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == \
        rewriter_config_pb2.RewriterConfig.DEFAULT


def test_other_mixed_precision_values_are_ignored_with_tf_servings_warning(caplog, tiny_model_dir):
    from server import SessionOptions, load_saved_model

    options = SessionOptions(mixed_precision="float16")
    assert options.config_proto().graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == 0
    load_saved_model(tiny_model_dir / "1", options=options).close()
    assert "float16 auto mixed precision is not supported. Valid option: bfloat16" in caplog.text


def test_server_says_at_start_up_whether_the_cpu_has_bf16(tiny_model_dir):
    from server import ServerProcess, cpu_bf16_flags

    with ServerProcess(["--model_name=tiny", f"--model_base_path={tiny_model_dir}",
                        "--mixed_precision=bfloat16"]) as srv:
        srv.wait_available("tiny")
        log = srv.stderr
    assert "Running inference with bfloat16 auto mixed precision" in log
    assert ("none of the bfloat16 instructions" in log) == (not cpu_bf16_flags())
