"""Warmup requests: TF Serving's assets.extra/tf_serving_warmup_requests, answered by the SavedModel."""
from __future__ import annotations

import numpy as np
import pytest

from export import read_report, read_signatures, read_warmup, warmup_requests
from export._cli import main as export_main
from export._serving_session import ServingSession
from protocol import WARMUP_DIR, WARMUP_FILE, WARMUP_MAX_RECORDS
from tests._references import hf_tokenizer


@pytest.fixture(scope="module")
def logs(tiny_model_dir):
    return read_warmup(tiny_model_dir / "1")


def test_warmup_file_is_where_tf_serving_reads_it(tiny_model_dir):
    assert (tiny_model_dir / "1" / WARMUP_DIR / WARMUP_FILE).is_file()


def test_warmup_records_parse_as_predict_logs_the_text_signature_answers(tiny_model_dir, logs):
    text = [log.predict_log.request for log in logs if log.predict_log.request.model_spec.signature_name == "text"]
    assert text and all(log.WhichOneof("log_type") == "predict_log" for log in logs)
    session = ServingSession.load(tiny_model_dir / "1")
    import tensorflow as tf

    for request in text:
        assert request.model_spec.name == "tiny"
        batch = tf.make_ndarray(request.inputs["text"])
        out = session.run("text", {"text": batch})
        assert out["embedding"].shape == (len(batch), 32)
        assert np.isfinite(out["embedding"]).all()


def test_warmup_covers_every_signature_at_several_batch_sizes_and_lengths(tiny_model_dir, logs):
    import tensorflow as tf

    shapes: dict[str, set] = {}
    for log in logs:
        request = log.predict_log.request
        if "input_ids" in request.inputs:
            shapes.setdefault(request.model_spec.signature_name, set()).add(
                tf.make_ndarray(request.inputs["input_ids"]).shape)
    assert set(read_signatures(tiny_model_dir / "1")) == {log.predict_log.request.model_spec.signature_name
                                                          for log in logs}
    assert {(1, 16), (1, 64), (4, 16), (16, 64)} <= shapes["tokens"]


def test_warmup_texts_tokenize_to_the_planned_lengths(tiny_checkpoint, logs):
    import tensorflow as tf

    hf = hf_tokenizer(tiny_checkpoint)
    lengths = set()
    for log in logs:
        request = log.predict_log.request
        if request.model_spec.signature_name == "text":
            texts = [t.decode() for t in tf.make_ndarray(request.inputs["text"])]
            lengths |= {len(hf(t)["input_ids"]) for t in texts}
    assert lengths == {16, 64}  # the tiny checkpoint's max length is 64


def test_warmup_records_option_cuts_or_cycles_the_plan(tiny_model_dir, tiny_checkpoint):
    signatures = read_signatures(tiny_model_dir / "1")
    vocab = tiny_checkpoint / "vocab.txt"
    plan = warmup_requests("m", signatures, vocab, 64)
    assert 7 < len(plan) < WARMUP_MAX_RECORDS
    assert warmup_requests("m", signatures, vocab, 64, records=7) == plan[:7]  # cut: the plan's first 7
    many = warmup_requests("m", signatures, vocab, 64, records=WARMUP_MAX_RECORDS)
    assert len(many) == WARMUP_MAX_RECORDS
    assert all(log == plan[i % len(plan)] for i, log in enumerate(many))  # cycled through the plan in order


def test_warmup_records_out_of_range_is_refused(tiny_checkpoint, tmp_path, capsys):
    code = export_main(["--model", str(tiny_checkpoint), "--name", "m", "--output-dir", str(tmp_path),
                        "--warmup-records", "1001"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: --warmup-records 1001: must be between 1 and 1000")


def test_no_warmup_writes_no_warmup_file(tiny_bare_dir):
    assert not (tiny_bare_dir / "1" / WARMUP_DIR / WARMUP_FILE).exists()
    assert read_report(tiny_bare_dir / "1")["warmup"] is None
